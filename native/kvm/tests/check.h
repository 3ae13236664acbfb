// A tiny test harness for the VMM's pure C++ parts: TEST(name) registers a function, the CHECK
// macros each print one TAP test point ("ok N - test: what" / "not ok N - ..." with a YAML block
// naming the failed expression, its values, file and line). main.cc runs every test, prints
// "1..N" and exits non-zero if any check failed. Nothing to download: tap reads the output.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>
#include <type_traits>
#include <vector>

namespace vmm_test {

struct TestCase {
  const char* name;
  void (*fn)();
};

inline std::vector<TestCase>& Registry() {
  static std::vector<TestCase> tests;
  return tests;
}

struct Register {
  Register(const char* name, void (*fn)()) { Registry().push_back({name, fn}); }
};

inline int checks = 0;
inline int failures = 0;
inline const char* current_test = "";

// A value as text for a failure report: integers in decimal and hex, strings quoted.
template <typename T>
std::string Show(const T& v) {
  if constexpr (std::is_same_v<T, bool>) {
    return v ? "true" : "false";
  } else if constexpr (std::is_enum_v<T>) {
    return Show(static_cast<std::underlying_type_t<T>>(v));
  } else if constexpr (std::is_integral_v<T>) {
    char buf[64];
    if constexpr (std::is_signed_v<T>) {
      std::snprintf(buf, sizeof buf, "%lld (0x%llx)", (long long)v, (unsigned long long)v);
    } else {
      std::snprintf(buf, sizeof buf, "%llu (0x%llx)", (unsigned long long)v, (unsigned long long)v);
    }
    return buf;
  } else if constexpr (std::is_pointer_v<T> && !std::is_same_v<std::decay_t<T>, const char*> &&
                       !std::is_same_v<std::decay_t<T>, char*>) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%p", static_cast<const void*>(v));
    return buf;
  } else if constexpr (std::is_same_v<T, std::nullptr_t>) {
    return "nullptr";
  } else {
    return "\"" + std::string(v) + "\"";
  }
}

// A YAML double-quoted scalar (JSON escaping is a subset of YAML's).
inline std::string Quote(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20 || c >= 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

// One TAP test point. '#' would start a TAP directive in the description, so it is replaced.
inline bool Report(bool ok, const std::string& what, const char* file, int line, const std::string& detail = "") {
  ++checks;
  std::string desc = std::string(current_test) + ": " + what;
  for (char& c : desc) {
    if (c == '#' || c == '\n') c = ' ';
  }
  std::printf("%s %d - %s\n", ok ? "ok" : "not ok", checks, desc.c_str());
  if (!ok) {
    ++failures;
    std::printf("  ---\n  expression: %s\n", Quote(what).c_str());
    if (!detail.empty()) std::printf("  found: %s\n", Quote(detail).c_str());
    std::printf("  at: %s\n  ...\n", Quote(std::string(file) + ":" + std::to_string(line)).c_str());
  }
  std::fflush(stdout);
  return ok;
}

}  // namespace vmm_test

#define TEST(name)                                                \
  static void test_##name();                                      \
  static ::vmm_test::Register register_##name(#name, test_##name); \
  static void test_##name()

#define CHECK(cond) ::vmm_test::Report(static_cast<bool>(cond), #cond, __FILE__, __LINE__)

#define CHECK_EQ(a, b)                                                                                    \
  do {                                                                                                    \
    const auto& check_a_ = (a);                                                                           \
    const auto& check_b_ = (b);                                                                           \
    const bool check_ok_ = check_a_ == check_b_;                                                          \
    ::vmm_test::Report(check_ok_, #a " == " #b, __FILE__, __LINE__,                                       \
                       check_ok_ ? "" : ::vmm_test::Show(check_a_) + " != " + ::vmm_test::Show(check_b_)); \
  } while (0)

// `stmt` must throw `type` whose what() contains `substr`.
#define CHECK_THROWS(stmt, type, substr)                                                                  \
  do {                                                                                                    \
    std::string check_found_ = "no exception";                                                           \
    bool check_ok_ = false;                                                                               \
    try {                                                                                                 \
      stmt;                                                                                               \
    } catch (const type& e) {                                                                             \
      check_found_ = std::string(#type ": ") + e.what();                                                  \
      check_ok_ = std::strstr(e.what(), substr) != nullptr;                                               \
    } catch (const std::exception& e) {                                                                   \
      check_found_ = std::string("another exception: ") + e.what();                                       \
    }                                                                                                     \
    ::vmm_test::Report(check_ok_, #stmt " throws " #type " with " #substr, __FILE__, __LINE__, check_found_); \
  } while (0)

#define CHECK_NOTHROW(stmt)                                                                  \
  do {                                                                                       \
    std::string check_found_;                                                                \
    try {                                                                                    \
      stmt;                                                                                  \
    } catch (const std::exception& e) {                                                      \
      check_found_ = e.what();                                                               \
    }                                                                                        \
    ::vmm_test::Report(check_found_.empty(), #stmt " does not throw", __FILE__, __LINE__, check_found_); \
  } while (0)
