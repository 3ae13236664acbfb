// Runs every registered TEST and prints TAP (see check.h). An exception escaping a test is one
// more failed check. Exit status: 0 when every check passed.
#include <cstdio>
#include <exception>

#include "tests/check.h"

int main() {
  std::printf("TAP version 14\n");
  for (const vmm_test::TestCase& test : vmm_test::Registry()) {
    vmm_test::current_test = test.name;
    try {
      test.fn();
    } catch (const std::exception& e) {
      vmm_test::Report(false, "no unexpected exception", __FILE__, __LINE__, e.what());
    } catch (...) {
      vmm_test::Report(false, "no unexpected exception", __FILE__, __LINE__, "a non-std exception");
    }
  }
  std::printf("1..%d\n", vmm_test::checks);
  if (vmm_test::failures) std::printf("# %d of %d checks failed\n", vmm_test::failures, vmm_test::checks);
  return vmm_test::failures ? 1 : 0;
}
