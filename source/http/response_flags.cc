#include "source/http/response_flags.h"

namespace sluice::http {

namespace {
constexpr std::string_view kShortNames[kResponseFlagCount] = {
    "LH",  "UH", "UT", "LR",  "UR",  "UF", "UC", "UO", "NR", "RL",  "UAEX",
    "URX", "SI", "DC", "UPE", "DPE", "NC", "DT", "BL", "PF", "UPT",
};
}  // namespace

std::string_view ResponseFlagShortName(ResponseFlag flag) {
  const int i = static_cast<int>(flag);
  return i < kResponseFlagCount ? kShortNames[i] : std::string_view("?");
}

std::string ResponseFlagsToString(uint64_t flags) {
  if (flags == 0) return "-";
  std::string out;
  for (int i = 0; i < kResponseFlagCount; ++i) {
    if ((flags & (uint64_t{1} << i)) == 0) continue;
    if (!out.empty()) out += ',';
    out += kShortNames[i];
  }
  return out;
}

}  // namespace sluice::http
