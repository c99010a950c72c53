#include "control/enrollment/qr_code.h"

#include <png.h>
#include <qrencode.h>
#include <sodium.h>

#include <cerrno>
#include <cstring>
#include <memory>

#include "control/state_store.h"

namespace lopower::enrollment {

namespace {

struct qrcode_deleter {
  void operator()(QRcode* q) const { QRcode_free(q); }
};

// The byte capacity of version 40 in 8-bit mode, for the error message.
std::size_t max_bytes(qr_ecc ecc) { return ecc == qr_ecc::low ? 2953 : 2331; }

constexpr const char* full_block = "\u2588";   // █
constexpr const char* upper_half = "\u2580";   // ▀
constexpr const char* lower_half = "\u2584";   // ▄
constexpr const char* ansi_white_on_black = "\033[38;5;231m\033[48;5;16m";
constexpr const char* ansi_reset = "\033[0m";

}  // namespace

result<qr_code> qr_code::encode(std::string_view text, qr_ecc ecc) {
  if (text.empty()) return fail("there is nothing to put in a QR code");
  if (text.size() > max_bytes(ecc))
    return fail("the text is too long for a QR code (" + std::to_string(text.size()) + " bytes; at most " +
                std::to_string(max_bytes(ecc)) + ")");
  errno = 0;
  std::unique_ptr<QRcode, qrcode_deleter> q(
      QRcode_encodeData(static_cast<int>(text.size()), reinterpret_cast<const unsigned char*>(text.data()), 0,
                        ecc == qr_ecc::low ? QR_ECLEVEL_L : QR_ECLEVEL_M));
  if (!q) {
    if (errno == ERANGE) return fail("the text is too long for a QR code (" + std::to_string(text.size()) + " bytes)");
    return fail(std::string("cannot make a QR code: ") + std::strerror(errno));
  }
  const auto n = static_cast<std::size_t>(q->width) * static_cast<std::size_t>(q->width);
  std::vector<std::uint8_t> modules(n);
  for (std::size_t i = 0; i < n; ++i) modules[i] = q->data[i] & 1u;  // bit 0: dark
  sodium_memzero(q->data, n);  // the modules encode the private key
  return qr_code(q->version, q->width, std::move(modules));
}

bool qr_code::dark_with_margin(int x, int y, int quiet) const {
  x -= quiet;
  y -= quiet;
  if (x < 0 || y < 0 || x >= width_ || y >= width_) return false;
  return dark(x, y);
}

std::string render_terminal(const qr_code& qr, terminal_colors colors, int quiet) {
  if (quiet < 0) quiet = 0;
  const int size = qr.width() + 2 * quiet;
  // "Ink" is what is drawn in the foreground colour.
  const bool ink_is_light = colors != terminal_colors::light_background;
  const auto ink = [&](int x, int y) {
    if (y >= size) return ink_is_light;  // below the last row: light
    return qr.dark_with_margin(x, y, quiet) != ink_is_light;
  };
  std::string out;
  out.reserve(static_cast<std::size_t>((size + 1) / 2) * (static_cast<std::size_t>(size) * 3 + 32));
  for (int y = 0; y < size; y += 2) {
    if (colors == terminal_colors::ansi) out += ansi_white_on_black;
    for (int x = 0; x < size; ++x) {
      const bool top = ink(x, y), bottom = ink(x, y + 1);
      out += top ? (bottom ? full_block : upper_half) : (bottom ? lower_half : " ");
    }
    if (colors == terminal_colors::ansi) out += ansi_reset;
    out += '\n';
  }
  return out;
}

result<std::string> render_png(const qr_code& qr, const png_options& options) {
  if (options.scale < 1 || options.scale > 64) return fail("the PNG scale must be 1..64 pixels per module");
  if (options.quiet < 0 || options.quiet > 64) return fail("the PNG quiet zone must be 0..64 modules");
  const int modules = qr.width() + 2 * options.quiet;
  const int pixels = modules * options.scale;

  std::vector<std::uint8_t> image(static_cast<std::size_t>(pixels) * static_cast<std::size_t>(pixels));
  for (int y = 0; y < pixels; ++y) {
    std::uint8_t* row = image.data() + static_cast<std::size_t>(y) * static_cast<std::size_t>(pixels);
    for (int x = 0; x < pixels; ++x)
      row[x] = qr.dark_with_margin(x / options.scale, y / options.scale, options.quiet) ? 0 : 255;
  }

  // libpng's simplified API: no setjmp/longjmp across C++ frames.
  png_image png{};
  png.version = PNG_IMAGE_VERSION;
  png.width = static_cast<png_uint_32>(pixels);
  png.height = static_cast<png_uint_32>(pixels);
  png.format = PNG_FORMAT_GRAY;
  png_alloc_size_t size = 0;
  if (!png_image_write_to_memory(&png, nullptr, &size, 0, image.data(), pixels, nullptr))
    return fail(std::string("cannot make the PNG: ") + png.message);
  std::string out(size, '\0');
  if (!png_image_write_to_memory(&png, out.data(), &size, 0, image.data(), pixels, nullptr))
    return fail(std::string("cannot make the PNG: ") + png.message);
  out.resize(size);
  png_image_free(&png);
  sodium_memzero(image.data(), image.size());
  return out;
}

std::string render_svg(const qr_code& qr, int quiet) {
  if (quiet < 0) quiet = 0;
  const int size = qr.width() + 2 * quiet;
  const std::string n = std::to_string(size), px = std::to_string(size * 8);
  std::string path;
  // One subpath per horizontal run of dark modules.
  for (int y = 0; y < qr.width(); ++y) {
    for (int x = 0; x < qr.width();) {
      if (!qr.dark(x, y)) {
        ++x;
        continue;
      }
      int run = 1;
      while (x + run < qr.width() && qr.dark(x + run, y)) ++run;
      path += "M" + std::to_string(x + quiet) + " " + std::to_string(y + quiet) + "h" + std::to_string(run) + "v1h-" +
              std::to_string(run) + "z";
      x += run;
    }
  }
  std::string out;
  out += "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
  out += "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" viewBox=\"0 0 " + n + " " + n + "\" width=\"" + px +
         "\" height=\"" + px + "\" shape-rendering=\"crispEdges\">\n";
  out += "<rect width=\"" + n + "\" height=\"" + n + "\" fill=\"#ffffff\"/>\n";
  out += "<path fill=\"#000000\" d=\"" + path + "\"/>\n";
  out += "</svg>\n";
  return out;
}

result<void> write_png_file(const std::string& path, const qr_code& qr, const png_options& options) {
  auto png = render_png(qr, options);
  if (!png) return png.error();
  return atomic_write_file(path, *png);
}

result<void> write_svg_file(const std::string& path, const qr_code& qr, int quiet) {
  return atomic_write_file(path, render_svg(qr, quiet));
}

}  // namespace lopower::enrollment
