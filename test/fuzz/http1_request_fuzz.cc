// libFuzzer target: an HTTP/1 request stream through the server-side read path.
#include <cstddef>
#include <cstdint>

#include "test/fuzz/http1_fuzz_driver.h"

extern "C" int SluiceFuzzHttp1Request(const uint8_t* data, size_t size) {
  sluice::http::http1::fuzz::RunHttp1(data, size, /*is_request=*/true);
  return 0;
}

#ifndef SLUICE_FUZZ_REPLAY
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return SluiceFuzzHttp1Request(data, size);
}
#endif
