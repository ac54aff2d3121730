// Runs every file of the given seed corpus directories through every fuzz entry point, so the
// corpus runs in every build, with any compiler (the libFuzzer targets need clang).
// Usage: fuzz_corpus_replay DIR...   Fails if a directory holds no file.
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

extern "C" int SluiceFuzzHttp1Request(const uint8_t* data, size_t size);
extern "C" int SluiceFuzzHttp1Response(const uint8_t* data, size_t size);
extern "C" int SluiceFuzzHttp1Server(const uint8_t* data, size_t size);
extern "C" int SluiceFuzzHttp2Server(const uint8_t* data, size_t size);
extern "C" int SluiceFuzzHttp2Client(const uint8_t* data, size_t size);
extern "C" int SluiceFuzzClientHello(const uint8_t* data, size_t size);

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s DIR...\n", argv[0]);
    return 2;
  }
  size_t total = 0;
  for (int i = 1; i < argc; ++i) {
    std::vector<std::filesystem::path> files;
    for (const auto& entry : std::filesystem::recursive_directory_iterator(argv[i])) {
      if (entry.is_regular_file()) files.push_back(entry.path());
    }
    if (files.empty()) {
      std::fprintf(stderr, "%s: no seed files\n", argv[i]);
      return 1;
    }
    for (const auto& path : files) {
      std::ifstream in(path, std::ios::binary);
      const std::string bytes((std::istreambuf_iterator<char>(in)),
                              std::istreambuf_iterator<char>());
      const auto* data = reinterpret_cast<const uint8_t*>(bytes.data());
      SluiceFuzzHttp1Request(data, bytes.size());
      SluiceFuzzHttp1Response(data, bytes.size());
      SluiceFuzzHttp1Server(data, bytes.size());
      SluiceFuzzHttp2Server(data, bytes.size());
      SluiceFuzzHttp2Client(data, bytes.size());
      SluiceFuzzClientHello(data, bytes.size());
      ++total;
    }
  }
  std::printf("replayed %zu seed files through 6 entry points\n", total);
  return 0;
}
