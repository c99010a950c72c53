#pragma once
// QR codes of device configs (libqrencode, 8-bit mode), drawn for the
// terminal, as PNG (libpng) and as SVG.
//
// The config text holds the device's private key, so everything rendered
// from it does too: files are written atomically with mode 0600.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "control/enrollment/result.h"

namespace lopower::enrollment {

// Error correction: L fits a wg-quick config with its key into a version
// that still fits an 80-column terminal; M survives more damage.
enum class qr_ecc : std::uint8_t { low, medium };

inline constexpr int default_quiet_zone = 4;  // modules of light margin, as the standard asks

class qr_code {
 public:
  // Encodes `text` byte for byte (8-bit mode) at the smallest version that holds it.
  static result<qr_code> encode(std::string_view text, qr_ecc ecc = qr_ecc::low);

  int version() const { return version_; }  // 1..40
  int width() const { return width_; }      // modules per side: 17 + 4 * version
  bool dark(int x, int y) const { return modules_[static_cast<std::size_t>(y) * static_cast<std::size_t>(width_) + static_cast<std::size_t>(x)] != 0; }
  // Whether the module at (x, y) of the code with `quiet` modules of margin
  // around it is dark; anything outside the code is light.
  bool dark_with_margin(int x, int y, int quiet) const;

 private:
  qr_code(int version, int width, std::vector<std::uint8_t> modules)
      : version_(version), width_(width), modules_(std::move(modules)) {}
  int version_ = 0;
  int width_ = 0;
  std::vector<std::uint8_t> modules_;  // 1 = dark, row by row
};

// How the terminal drawing gets its colours. Each character cell shows two
// modules, one above the other, with the half blocks ▀ ▄ █ and a space; light
// modules (the quiet zone included) are drawn in the foreground colour and
// dark ones left as background, as qrencode's UTF8 output does.
//  - ansi: white on black set explicitly with ANSI colour codes (each line
//    ends with a reset), so the code scans on dark and light terminals alike.
//    The default.
//  - dark_background: no escape codes; for terminals with light text on a
//    dark background (and for output that is not a terminal).
//  - light_background: no escape codes, inverted: dark modules drawn as the
//    glyphs, for dark text on a light background.
enum class terminal_colors : std::uint8_t { ansi, dark_background, light_background };

// (width + 2 * quiet) columns by ceil((width + 2 * quiet) / 2) lines, each
// line ending in '\n'.
std::string render_terminal(const qr_code& qr, terminal_colors colors = terminal_colors::ansi,
                            int quiet = default_quiet_zone);

struct png_options {
  int scale = 8;  // pixels per module, 1..64
  int quiet = default_quiet_zone;
};

// A grayscale PNG, (width + 2 * quiet) * scale pixels square.
result<std::string> render_png(const qr_code& qr, const png_options& options = {});

// An SVG with a white background and one <path> of the dark modules; the
// viewBox counts modules (width + 2 * quiet), drawn at 8 px per module.
std::string render_svg(const qr_code& qr, int quiet = default_quiet_zone);

// Atomic, mode 0600 (through atomic_write_file).
result<void> write_png_file(const std::string& path, const qr_code& qr, const png_options& options = {});
result<void> write_svg_file(const std::string& path, const qr_code& qr, int quiet = default_quiet_zone);

}  // namespace lopower::enrollment
