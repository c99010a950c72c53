#include "control/enrollment/qr_code.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <sstream>
#include <vector>

#include "control/state_store.h"
#include "control/enrollment/wg_quick_config.h"
#include "lopower/byte_order.h"
#include "tests/unit/enrollment/temp_dir.h"

namespace lopower::enrollment {
namespace {

using testing::mode_of;
using testing::temp_dir;
using testing::find_program;

// A real config, as `device add` prints it.
std::string sample_config(bool with_private_key = true) {
  device d;
  d.name = "esp";
  const private_key key = generate_private_key();
  if (with_private_key) d.device_private_key = key;
  d.public_key = public_from_private(key);
  d.ipv4 = *ip_address::parse("10.90.0.2");
  d.ipv6 = *ip_address::parse("fd7a:115c:a1e0:9909::2");
  server_addresses server{*ip_address::parse("10.90.0.1"), *ip_address::parse("fd7a:115c:a1e0:9909::1")};
  wg_quick_options options;
  options.endpoint = "lopower-gateway.example.com:51820";
  options.route_all_ipv4 = true;
  auto text = render_wg_quick_config(d, public_from_private(generate_private_key()), server, options);
  EXPECT_TRUE(text.ok()) << text.message();
  return *text;
}

qr_code encode(const std::string& text, qr_ecc ecc = qr_ecc::low) {
  auto q = qr_code::encode(text, ecc);
  EXPECT_TRUE(q.ok()) << q.message();
  return std::move(q).value();
}

// Splits the terminal drawing into lines of code points, ANSI escapes removed.
std::vector<std::vector<std::string>> terminal_cells(const std::string& drawing) {
  std::string plain;
  for (std::size_t i = 0; i < drawing.size(); ++i) {
    if (drawing[i] == '\033' && i + 1 < drawing.size() && drawing[i + 1] == '[') {
      i = drawing.find('m', i);  // ESC [ digits ; ... m
      if (i == std::string::npos) break;
      continue;
    }
    plain += drawing[i];
  }
  std::vector<std::vector<std::string>> lines(1);
  for (std::size_t i = 0; i < plain.size();) {
    if (plain[i] == '\n') {
      lines.emplace_back();
      ++i;
      continue;
    }
    const auto c = static_cast<unsigned char>(plain[i]);
    const std::size_t len = c < 0x80 ? 1 : c < 0xe0 ? 2 : c < 0xf0 ? 3 : 4;
    lines.back().push_back(plain.substr(i, len));
    i += len;
  }
  EXPECT_TRUE(lines.back().empty()) << "the drawing does not end with a newline";
  lines.pop_back();
  return lines;
}

// Reads the drawing back into modules (true = drawn in the foreground colour).
std::vector<std::vector<bool>> terminal_ink(const std::string& drawing, int size) {
  std::vector<std::vector<bool>> ink(static_cast<std::size_t>(size + 1), std::vector<bool>(static_cast<std::size_t>(size)));
  const auto lines = terminal_cells(drawing);
  for (std::size_t row = 0; row < lines.size(); ++row) {
    for (std::size_t x = 0; x < lines[row].size() && x < static_cast<std::size_t>(size); ++x) {
      const std::string& c = lines[row][x];
      const bool top = c == "\u2588" || c == "\u2580";
      const bool bottom = c == "\u2588" || c == "\u2584";
      EXPECT_TRUE(top || bottom || c == " ") << "unexpected character \"" << c << "\"";
      ink[2 * row][x] = top;
      ink[2 * row + 1][x] = bottom;
    }
  }
  return ink;
}

TEST(QrCode, EncodesAConfigAtASizeThatFitsATerminal) {
  const std::string config = sample_config();
  const qr_code q = encode(config);
  EXPECT_GE(q.version(), 1);
  EXPECT_LE(q.version(), 40);
  EXPECT_EQ(q.width(), 17 + 4 * q.version());
  EXPECT_LE(q.width() + 2 * default_quiet_zone, 80) << "version " << q.version() << " for " << config.size() << " bytes";
  const qr_code m = encode(config, qr_ecc::medium);
  EXPECT_GE(m.version(), q.version());
}

TEST(QrCode, TooLongOrEmptyTextIsAnError) {
  EXPECT_FALSE(qr_code::encode(std::string(3000, 'x')).ok());
  EXPECT_FALSE(qr_code::encode("").ok());
  EXPECT_TRUE(qr_code::encode(std::string(2953, 'x')).ok());  // version 40-L holds 2953 bytes
}

TEST(QrCode, TerminalDrawingHasTheRightSizeAndModules) {
  const qr_code q = encode(sample_config());
  for (const int quiet : {4, 0, 1}) {
    const int size = q.width() + 2 * quiet;
    for (const auto colors : {terminal_colors::ansi, terminal_colors::dark_background, terminal_colors::light_background}) {
      const std::string drawing = render_terminal(q, colors, quiet);
      const auto lines = terminal_cells(drawing);
      ASSERT_EQ(lines.size(), static_cast<std::size_t>((size + 1) / 2));
      for (const auto& l : lines) ASSERT_EQ(l.size(), static_cast<std::size_t>(size));
      EXPECT_EQ(drawing.find('\033') != std::string::npos, colors == terminal_colors::ansi);

      // Light modules are the ink, except in the light-background drawing.
      const bool ink_is_light = colors != terminal_colors::light_background;
      const auto ink = terminal_ink(drawing, size);
      for (int y = 0; y < size; ++y) {
        for (int x = 0; x < size; ++x) {
          ASSERT_EQ(ink[static_cast<std::size_t>(y)][static_cast<std::size_t>(x)], q.dark_with_margin(x, y, quiet) != ink_is_light)
              << "module " << x << "," << y << " quiet " << quiet;
        }
      }
      // The half row below an odd-sized code is light.
      if (size % 2 == 1) {
        for (int x = 0; x < size; ++x) {
          EXPECT_EQ(ink[static_cast<std::size_t>(size)][static_cast<std::size_t>(x)], ink_is_light);
        }
      }
    }
  }
}

TEST(QrCode, AnsiDrawingSetsWhiteOnBlackAndResetsEachLine) {
  const qr_code q = encode("hello");
  const std::string drawing = render_terminal(q);
  std::istringstream in(drawing);
  std::string l;
  while (std::getline(in, l)) {
    EXPECT_EQ(l.rfind("\033[38;5;231m\033[48;5;16m", 0), 0u);
    EXPECT_EQ(l.substr(l.size() - 4), "\033[0m");
  }
}

std::uint32_t be32(const std::string& s, std::size_t at) {
  return load_be32(reinterpret_cast<const std::uint8_t*>(s.data() + at));
}

TEST(QrCode, PngHasTheRightSize) {
  const qr_code q = encode(sample_config());
  for (const int scale : {8, 1, 3}) {
    png_options o;
    o.scale = scale;
    auto png = render_png(q, o);
    ASSERT_TRUE(png.ok()) << png.message();
    ASSERT_GT(png->size(), 33u);
    EXPECT_EQ(png->substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8));
    EXPECT_EQ(png->substr(12, 4), "IHDR");
    const auto side = static_cast<std::uint32_t>((q.width() + 8) * scale);
    EXPECT_EQ(be32(*png, 16), side);
    EXPECT_EQ(be32(*png, 20), side);
    EXPECT_EQ(static_cast<unsigned char>((*png)[25]), 0u);  // colour type 0: grayscale
  }
  png_options bad;
  bad.scale = 0;
  EXPECT_FALSE(render_png(q, bad).ok());
}


std::string run(const std::string& command) {
  std::string out;
  std::FILE* p = ::popen(command.c_str(), "r");
  if (p == nullptr) return out;
  char buf[4096];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  ::pclose(p);
  return out;
}

TEST(QrCode, PngDecodesToTheConfig) {
  const auto zbarimg = find_program("zbarimg");
  if (!zbarimg) GTEST_SKIP() << "zbarimg is not installed (Debian package zbar-tools): the QR round trip is not checked";
  temp_dir tmp;
  for (const bool with_key : {true, false}) {
    const std::string config = sample_config(with_key);
    for (const auto ecc : {qr_ecc::low, qr_ecc::medium}) {
      const qr_code q = encode(config, ecc);
      const std::string file = tmp / "code.png";
      ASSERT_TRUE(write_png_file(file, q).ok());
      EXPECT_EQ(mode_of(file), 0600);
      // QR codes only: with every symbology on, zbarimg now and then also
      // reads a 1-D barcode (an EAN-8 such as "789280") into the modules of
      // a random key's code, about once in 600 codes.
      std::string decoded = run(*zbarimg + " --quiet --raw -Sdisable -Sqrcode.enable '" + file + "' 2>/dev/null");
      // zbarimg ends each symbol with a newline of its own.
      ASSERT_FALSE(decoded.empty()) << "zbarimg found no code";
      ASSERT_EQ(decoded.back(), '\n');
      decoded.pop_back();
      EXPECT_EQ(decoded, config);
    }
  }
}

// Checks that tags nest and close, and returns the names of the elements.
std::vector<std::string> xml_elements(const std::string& xml) {
  std::vector<std::string> stack, seen;
  for (std::size_t i = xml.find('<'); i != std::string::npos; i = xml.find('<', i + 1)) {
    const auto end = xml.find('>', i);
    EXPECT_NE(end, std::string::npos);
    if (end == std::string::npos) break;
    const std::string tag = xml.substr(i + 1, end - i - 1);
    if (tag.front() == '?') continue;
    if (tag.front() == '/') {
      EXPECT_FALSE(stack.empty());
      if (stack.empty()) break;
      EXPECT_EQ(stack.back(), tag.substr(1));
      stack.pop_back();
      continue;
    }
    const std::string name = tag.substr(0, tag.find_first_of(" \n/"));
    seen.push_back(name);
    EXPECT_EQ(std::count(tag.begin(), tag.end(), '"') % 2, 0) << tag;
    if (tag.back() != '/') stack.push_back(name);
  }
  EXPECT_TRUE(stack.empty());
  return seen;
}

TEST(QrCode, SvgIsOnePathOfTheDarkModules) {
  const qr_code q = encode(sample_config());
  const std::string svg = render_svg(q);
  const int size = q.width() + 8;
  EXPECT_EQ(svg.rfind("<?xml", 0), 0u);
  const auto elements = xml_elements(svg);
  EXPECT_EQ(elements, (std::vector<std::string>{"svg", "rect", "path"}));
  const std::string n = std::to_string(size);
  EXPECT_NE(svg.find("viewBox=\"0 0 " + n + " " + n + "\""), std::string::npos);

  // Draw the path back into modules: "M x y h run v1 h-run z" per run.
  std::vector<std::vector<bool>> dark(static_cast<std::size_t>(size), std::vector<bool>(static_cast<std::size_t>(size)));
  const auto d_at = svg.find(" d=\"");
  ASSERT_NE(d_at, std::string::npos);
  const std::string d = svg.substr(d_at + 4, svg.find('"', d_at + 4) - d_at - 4);
  std::size_t covered = 0;
  std::istringstream in(d);
  for (;;) {
    char m = 0, h = 0, v = 0, h2 = 0, z = 0, minus = 0;
    int x = 0, y = 0, run = 0, one = 0, back = 0;
    if (!(in >> m)) break;
    ASSERT_TRUE(in >> x >> y >> h >> run >> v >> one >> h2 >> minus >> back >> z) << "bad path at " << covered;
    ASSERT_EQ(std::string({m, h, v, h2, minus, z}), "Mhvh-z");
    EXPECT_EQ(one, 1);
    EXPECT_EQ(back, run);
    for (int i = 0; i < run; ++i) dark[static_cast<std::size_t>(y)][static_cast<std::size_t>(x + i)] = true;
    covered = static_cast<std::size_t>(in.tellg());
  }
  EXPECT_EQ(covered, d.size()) << "the path has something other than runs";
  for (int y = 0; y < size; ++y) {
    for (int x = 0; x < size; ++x) {
      ASSERT_EQ(dark[static_cast<std::size_t>(y)][static_cast<std::size_t>(x)], q.dark_with_margin(x, y, 4)) << x << "," << y;
    }
  }
}

TEST(QrCode, SvgFileIsPrivate) {
  temp_dir tmp;
  const qr_code q = encode("secret");
  ASSERT_TRUE(write_svg_file(tmp / "code.svg", q).ok());
  EXPECT_EQ(mode_of(tmp / "code.svg"), 0600);
  auto back = read_file(tmp / "code.svg");
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, render_svg(q));
}

TEST(QrCode, WritingIntoAMissingDirectoryIsAnError) {
  temp_dir tmp;
  const qr_code q = encode("x");
  auto r = write_png_file(tmp / "no/such/dir/code.png", q);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.message().find("no/such/dir"), std::string::npos) << r.message();
}

}  // namespace
}  // namespace lopower::enrollment
