#include "source/http/http2/settings.h"

#include "google/protobuf/util/time_util.h"

namespace sluice::http::http2 {

namespace {
std::chrono::milliseconds Ms(const google::protobuf::Duration& d) {
  return std::chrono::milliseconds(google::protobuf::util::TimeUtil::DurationToMilliseconds(d));
}
}  // namespace

void ApplyProtocolOptions(const config::v1::Http2ProtocolOptions& o, Http2Settings& h2) {
  auto set = [](const google::protobuf::UInt32Value& v, bool has, uint32_t& field) {
    if (has) field = v.value();
  };
  set(o.max_concurrent_streams(), o.has_max_concurrent_streams(), h2.max_concurrent_streams);
  set(o.initial_stream_window_size(), o.has_initial_stream_window_size(),
      h2.initial_stream_window_size);
  set(o.initial_connection_window_size(), o.has_initial_connection_window_size(),
      h2.initial_connection_window_size);
  set(o.max_frame_size(), o.has_max_frame_size(), h2.max_frame_size);
  set(o.max_header_list_size(), o.has_max_header_list_size(), h2.max_header_list_size);
  set(o.hpack_table_size(), o.has_hpack_table_size(), h2.header_table_size);
  set(o.max_resets_per_second(), o.has_max_resets_per_second(), h2.max_resets_per_second);
  set(o.max_control_frames_per_second(), o.has_max_control_frames_per_second(),
      h2.max_control_frames_per_second);
  set(o.max_consecutive_empty_frames(), o.has_max_consecutive_empty_frames(),
      h2.max_consecutive_empty_frames);
  set(o.max_priority_frames_per_stream(), o.has_max_priority_frames_per_stream(),
      h2.max_priority_frames_per_stream);
  set(o.max_continuation_frames(), o.has_max_continuation_frames(), h2.max_continuations);
  set(o.max_outbound_control_frames(), o.has_max_outbound_control_frames(),
      h2.max_outbound_control_frames);
  if (o.has_keepalive_interval()) h2.keepalive_interval = Ms(o.keepalive_interval());
  if (o.has_keepalive_timeout()) h2.keepalive_timeout = Ms(o.keepalive_timeout());
}

}  // namespace sluice::http::http2
