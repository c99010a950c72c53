#include "control/metrics/exposition.h"

#include <gtest/gtest.h>

#include <cmath>

namespace lopower::metrics {
namespace {

TEST(Exposition, WritesHelpTypeAndSamples) {
  exposition e;
  e.family("lopower_drops_total", exposition::kind::counter, "Packets dropped");
  e.sample({{"port", "lan"}, {"reason", "wg_replay"}}, 3);
  e.sample({}, 12345678901);
  e.single("lopower_uptime_seconds", exposition::kind::gauge, "Up", 0.25);
  EXPECT_EQ(e.text(),
            "# HELP lopower_drops_total Packets dropped\n"
            "# TYPE lopower_drops_total counter\n"
            "lopower_drops_total{port=\"lan\",reason=\"wg_replay\"} 3\n"
            "lopower_drops_total 12345678901\n"
            "# HELP lopower_uptime_seconds Up\n"
            "# TYPE lopower_uptime_seconds gauge\n"
            "lopower_uptime_seconds 0.25\n");
}

TEST(Exposition, EscapesLabelValuesAndHelp) {
  exposition e;
  e.family("m", exposition::kind::gauge, "a\\b\nc \"q\"");
  e.sample({{"name", "x\"y\\z\nw"}}, 1);
  EXPECT_EQ(e.text(),
            "# HELP m a\\\\b\\nc \"q\"\n"
            "# TYPE m gauge\n"
            "m{name=\"x\\\"y\\\\z\\nw\"} 1\n");
}

TEST(Exposition, WritesSpecialValuesAsTheFormatSpellsThem) {
  exposition e;
  e.family("m", exposition::kind::gauge, "h");
  e.sample({}, NAN);
  e.sample({}, INFINITY);
  e.sample({}, -INFINITY);
  EXPECT_NE(e.text().find("m NaN\nm +Inf\nm -Inf\n"), std::string::npos) << e.text();
}

}  // namespace
}  // namespace lopower::metrics
