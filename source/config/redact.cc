#include "source/config/redact.h"

#include <string>
#include <vector>

#include "api/sluice/config/v1/annotations.pb.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/reflection.h"

namespace sluice::config {
namespace {

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;

bool IsSensitive(const FieldDescriptor& field) {
  return field.options().GetExtension(v1::sensitive);
}

bool IsSecretLocation(const FieldDescriptor& field) {
  return field.options().GetExtension(v1::secret_location);
}

bool IsText(const FieldDescriptor& field) {
  return field.cpp_type() == FieldDescriptor::CPPTYPE_STRING;
}

// `secret`: the message is (inside) a sensitive field's value.
void Walk(Message& message, bool secret) {
  const Reflection* reflection = message.GetReflection();
  std::vector<const FieldDescriptor*> fields;
  // Only the fields that are set: unset ones hold nothing to hide, and walking into an unset
  // message field would create it.
  reflection->ListFields(message, &fields);
  const bool map_entry = message.GetDescriptor()->options().map_entry();
  for (const FieldDescriptor* field : fields) {
    // A map's keys are names, never secrets (and rewriting them would merge the entries).
    if (map_entry && field->number() == 1) continue;
    const bool field_secret = (secret || IsSensitive(*field)) && !IsSecretLocation(*field);
    if (IsText(*field)) {
      if (!field_secret) continue;
      if (field->is_repeated()) {
        for (int i = 0; i < reflection->FieldSize(message, field); ++i) {
          if (!reflection->GetRepeatedString(message, field, i).empty()) {
            reflection->SetRepeatedString(&message, field, i, kRedacted);
          }
        }
      } else if (!reflection->GetString(message, field).empty()) {
        reflection->SetString(&message, field, kRedacted);
      }
    } else if (field->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
      if (field->is_repeated()) {  // map fields included: each entry is a message
        for (int i = 0; i < reflection->FieldSize(message, field); ++i) {
          Walk(*reflection->MutableRepeatedMessage(&message, field, i), field_secret);
        }
      } else {
        Walk(*reflection->MutableMessage(&message, field), field_secret);
      }
    }
  }
}

}  // namespace

void RedactSecrets(Message& message) { Walk(message, /*secret=*/false); }

}  // namespace sluice::config
