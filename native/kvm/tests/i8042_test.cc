// The i8042: the guest's `reboot=k` writes 0xfe to port 0x64; that ends the VM.
#include <cstdint>

#include "devices/legacy/i8042.h"
#include "tests/check.h"

TEST(i8042_reset) {
  int resets = 0;
  vmm::devices::I8042 kbd([&] { ++resets; });
  uint8_t b = 0xfe;
  kbd.Write(0, &b, 1);  // data port
  CHECK_EQ(resets, 0);
  b = 0xfd;
  kbd.Write(4, &b, 1);
  CHECK_EQ(resets, 0);
  const uint8_t two[2] = {0xfe, 0xfe};
  kbd.Write(4, two, 2);  // not a byte write
  CHECK_EQ(resets, 0);
  b = 0xfe;
  kbd.Write(4, &b, 1);
  CHECK_EQ(resets, 1);
  kbd.Write(4, &b, 1);
  CHECK_EQ(resets, 2);

  uint8_t status[2] = {0xaa, 0xaa};
  kbd.Read(4, status, 1);
  CHECK_EQ(status[0], uint8_t{0});  // buffers empty: kb_wait() returns at once
  CHECK_EQ(status[1], uint8_t{0xaa});
  kbd.Read(0, status, 2);
  CHECK(status[0] == 0 && status[1] == 0);
}
