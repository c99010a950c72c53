#include "tools/lopower-ctl/device_cli.h"

#include <cstdio>
#include <ctime>

#include "control/enrollment/keys.h"
#include "control/enrollment/qr_code.h"
#include "tools/lopower-ctl/device_view.h"
#include "tools/lopower-ctl/flow_view.h"

namespace lopower {
namespace {

struct options {
  std::string name;
  nlohmann::json args = nlohmann::json::object();
  bool json = false;
  bool qr = false;
  std::string qr_png, qr_svg;
};

void usage() {
  std::fputs(
      "usage: lopower-ctl device add NAME [--public-key BASE64 | --keep-private-key] [--ipv4-only|--ipv6-only]\n"
      "                              [--keepalive S] [--egress default|none|exit|uplink] [--json] [--no-qr]\n"
      "                              [--qr-png FILE] [--qr-svg FILE]\n"
      "       lopower-ctl device set NAME --egress default|none|exit|uplink [--json]\n"
      "       lopower-ctl device list [--json]\n"
      "       lopower-ctl device show NAME [--qr] [--json] [--qr-png FILE] [--qr-svg FILE]\n"
      "       lopower-ctl device remove NAME\n"
      "       lopower-ctl device reset-timestamp NAME\n",
      stderr);
}

// Parses the words after the subcommand; false (after a message) on a mistake.
bool parse(const std::string& sub, const std::vector<std::string>& words, options& o) {
  const bool takes_name = sub != "list";
  for (std::size_t i = 0; i < words.size(); ++i) {
    const std::string& w = words[i];
    auto value = [&](const char* what) -> std::optional<std::string> {
      if (i + 1 < words.size()) return words[++i];
      std::fprintf(stderr, "lopower-ctl: %s needs %s\n", w.c_str(), what);
      return std::nullopt;
    };
    if (w == "--json") o.json = true;
    else if (w == "--qr" && sub == "show") o.qr = true;
    else if (w == "--no-qr" && sub == "add") o.qr = false;
    else if (w == "--ipv4-only" && sub == "add") o.args["ipv4_only"] = true;
    else if (w == "--ipv6-only" && sub == "add") o.args["ipv6_only"] = true;
    else if (w == "--keep-private-key" && sub == "add") o.args["keep_private_key"] = true;
    else if (w == "--public-key" && sub == "add") {
      auto v = value("a base64 key");
      if (!v) return false;
      o.args["public_key"] = *v;
    } else if (w == "--egress" && (sub == "add" || sub == "set")) {
      auto v = value("default, none, exit or uplink");
      if (!v) return false;
      o.args["egress"] = *v;  // the daemon checks it
    } else if (w == "--keepalive" && sub == "add") {
      auto v = value("seconds");
      if (!v) return false;
      try {
        std::size_t used = 0;
        const long long s = std::stoll(*v, &used);
        if (used != v->size()) throw std::invalid_argument(*v);
        o.args["keepalive"] = s;
      } catch (const std::exception&) {
        std::fprintf(stderr, "lopower-ctl: --keepalive wants a number of seconds, not \"%s\"\n", v->c_str());
        return false;
      }
    } else if ((w == "--qr-png" || w == "--qr-svg") && (sub == "add" || sub == "show")) {
      auto v = value("a file name");
      if (!v) return false;
      (w == "--qr-png" ? o.qr_png : o.qr_svg) = *v;
    } else if (!w.empty() && w[0] != '-' && takes_name && o.name.empty()) {
      o.name = w;
    } else {
      std::fprintf(stderr, "lopower-ctl device %s: unexpected argument %s\n", sub.c_str(), w.c_str());
      return false;
    }
  }
  if (takes_name && o.name.empty()) {
    std::fprintf(stderr, "lopower-ctl device %s: a device NAME is required\n", sub.c_str());
    return false;
  }
  if (takes_name) o.args["name"] = o.name;
  return true;
}

// Prints the QR code of `text` and writes the requested image files.
int show_qr(const std::string& text, const options& o, bool terminal) {
  auto code = enrollment::qr_code::encode(text);
  if (!code) {
    std::fprintf(stderr, "lopower-ctl: cannot make a QR code: %s\n", code.message().c_str());
    return 1;
  }
  if (terminal) std::fputs(enrollment::render_terminal(*code).c_str(), stdout);
  if (!o.qr_png.empty()) {
    if (auto r = enrollment::write_png_file(o.qr_png, *code); !r) {
      std::fprintf(stderr, "lopower-ctl: %s\n", r.message().c_str());
      return 1;
    }
    std::fprintf(stderr, "QR code written to %s (mode 0600: it holds the device's private key)\n", o.qr_png.c_str());
  }
  if (!o.qr_svg.empty()) {
    if (auto r = enrollment::write_svg_file(o.qr_svg, *code); !r) {
      std::fprintf(stderr, "lopower-ctl: %s\n", r.message().c_str());
      return 1;
    }
    std::fprintf(stderr, "QR code written to %s (mode 0600: it holds the device's private key)\n", o.qr_svg.c_str());
  }
  return 0;
}

std::string text_or_dash(const nlohmann::json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : "-";
}

std::int64_t now_unix() { return static_cast<std::int64_t>(std::time(nullptr)); }

}  // namespace

int run_device_command(const std::vector<std::string>& args, const ctl_requester& request) {
  if (args.empty()) {
    usage();
    return 2;
  }
  const std::string sub = args[0];
  if (sub != "add" && sub != "list" && sub != "show" && sub != "set" && sub != "remove" && sub != "reset-timestamp") {
    usage();
    return 2;
  }
  options o;
  o.qr = sub == "add";
  if (!parse(sub, std::vector<std::string>(args.begin() + 1, args.end()), o)) return 2;
  if (sub == "list") o.args["with_interface"] = true;  // the header, as `wg show` has it
  auto result = request({"device." + sub, o.args});
  if (!result) return 1;
  if (sub == "list") {
    const bool split = result->is_object();
    const nlohmann::json devices = split ? result->value("devices", nlohmann::json::array()) : *result;
    const nlohmann::json interface = split ? result->value("interface", nlohmann::json::object()) : nlohmann::json::object();
    // --json stays the array of devices it has always been; the interface is in `status --json` too.
    if (o.json) std::printf("%s\n", devices.dump(2).c_str());
    else std::fputs(render_device_list(interface, devices, now_unix()).c_str(), stdout);
    return 0;
  }
  if (sub == "show") {
    // Its spliced flows, from the daemon's `flows` command.
    auto flows = request({"flows", {{"device", o.name}}});
    if (!flows) return 1;
    if (o.json) {
      (*result)["flows"] = flows->is_object() ? flows->value("flows", nlohmann::json::array()) : nlohmann::json::array();
    } else {
      std::fputs(render_device_block(*result, now_unix()).c_str(), stdout);
      std::fputs(("\nflows:\n" + render_flows(*flows) + "\n").c_str(), stdout);
    }
  }
  if (o.json) {
    std::printf("%s\n", result->dump(2).c_str());
  } else if (sub == "add" || sub == "show") {
    std::string config = text_or_dash(*result, "config");
    std::fputs(config.c_str(), stdout);
    if (o.qr) std::fputs("\n", stdout);
    const int rc = (o.qr || !o.qr_png.empty() || !o.qr_svg.empty()) ? show_qr(config, o, o.qr) : 0;
    enrollment::wipe(config);
    if (result->value("shown_once", false))
      std::fputs("\nlopower keeps only this device's public key: the config and QR code above are shown once.\n"
                 "Save them now (--keep-private-key keeps the key for a later `device show --qr`).\n",
                 stderr);
    return rc;
  } else if (sub == "set") {
    std::fputs(render_device_block(*result, now_unix()).c_str(), stdout);
  } else if (sub == "remove") {
    std::printf("device %s removed; its sessions have ended\n", o.name.c_str());
  } else {
    std::printf("device %s: its next handshake is accepted whatever its timestamp\n", o.name.c_str());
  }
  return 0;
}

}  // namespace lopower
