#include "lopower/ctl_protocol.h"

#include <gtest/gtest.h>

#include <string>

namespace lopower::ctl {
namespace {

std::string error_of(std::string_view line) {
  auto r = parse_request(line);
  return std::holds_alternative<std::string>(r) ? std::get<std::string>(r) : "";
}

TEST(CtlProtocol, ParsesACommandWithArguments) {
  auto r = parse_request(R"({"command":"status","args":{"json":true}})");
  ASSERT_TRUE(std::holds_alternative<request>(r));
  EXPECT_EQ(std::get<request>(r).command, "status");
  EXPECT_EQ(std::get<request>(r).args["json"], true);
}

TEST(CtlProtocol, ArgumentsDefaultToAnEmptyObject) {
  auto r = parse_request(R"({"command":"status"})");
  ASSERT_TRUE(std::holds_alternative<request>(r));
  EXPECT_TRUE(std::get<request>(r).args.is_object());
  EXPECT_TRUE(std::get<request>(r).args.empty());
}

TEST(CtlProtocol, RoundTripsItsOwnEncoding) {
  request in{"device", {{"name", "esp32-kitchen"}}};
  std::string line = encode_request(in);
  ASSERT_EQ(line.back(), '\n');
  line.pop_back();
  auto out = parse_request(line);
  ASSERT_TRUE(std::holds_alternative<request>(out));
  EXPECT_EQ(std::get<request>(out).command, in.command);
  EXPECT_EQ(std::get<request>(out).args, in.args);
}

TEST(CtlProtocol, RefusesMalformedRequestsWithAReason) {
  EXPECT_EQ(error_of("status"), "request is not valid JSON");
  EXPECT_EQ(error_of(""), "request is not valid JSON");
  EXPECT_EQ(error_of("[1,2]"), "request must be a JSON object");
  EXPECT_EQ(error_of("{}"), "request needs a \"command\" string");
  EXPECT_EQ(error_of(R"({"command":7})"), "request needs a \"command\" string");
  EXPECT_EQ(error_of(R"({"command":""})"), "request needs a \"command\" string");
  EXPECT_EQ(error_of(R"({"command":"x","args":[1]})"), "\"args\" must be a JSON object");
  EXPECT_EQ(error_of(R"({"command":"x","extra":1})"), "unknown request field \"extra\"");
}

TEST(CtlProtocol, RefusesOversizedAndDeeplyNestedRequests) {
  EXPECT_EQ(error_of(std::string(max_request_bytes + 1, ' ')), "request too large");
  std::string deep = R"({"command":"x","args":{"a":)" + std::string(100, '[') + std::string(100, ']') + "}}";
  EXPECT_EQ(error_of(deep), "request nested too deeply");
  // Brackets inside strings are not nesting.
  auto ok = parse_request(R"({"command":"x","args":{"a":")" + std::string(100, '[') + "\"}}");
  EXPECT_TRUE(std::holds_alternative<request>(ok));
}

TEST(CtlProtocol, RepliesAreSingleLineJson) {
  const std::string ok = encode_ok({{"a", 1}});
  EXPECT_EQ(ok, "{\"ok\":true,\"result\":{\"a\":1}}\n");
  const std::string err = encode_error("bad \"thing\"\nhere");
  EXPECT_EQ(err.find('\n'), err.size() - 1);
  const auto parsed = nlohmann::json::parse(err);
  EXPECT_EQ(parsed["ok"], false);
  EXPECT_EQ(parsed["error"], "bad \"thing\"\nhere");
  // Invalid UTF-8 in a message cannot break the reply.
  nlohmann::json invalid_utf8;
  EXPECT_NO_THROW(invalid_utf8 = nlohmann::json::parse(encode_error(std::string("\xff\xfe", 2))));
  EXPECT_EQ(invalid_utf8["ok"], false);
}

TEST(CtlProtocol, ClientReportsAMissingDaemonAsUnavailable) {
  EXPECT_THROW(call("/nonexistent/lopower-test.sock", {"status", {}}), unavailable);
}

}  // namespace
}  // namespace lopower::ctl
