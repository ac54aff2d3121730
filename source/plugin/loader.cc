#include "source/plugin/loader.h"

#include <dlfcn.h>
#include <link.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "source/common/crash_handler.h"
#include "source/common/logging.h"
#include "source/plugin/host_types.h"

namespace sluice::plugin {

namespace {

bool IsRegularFile(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

// The shared objects in the process whose file name starts with one of `prefixes`.
std::vector<std::string> LoadedObjects(const std::vector<std::string_view>& prefixes) {
  struct Search {
    const std::vector<std::string_view>* prefixes;
    std::vector<std::string> found;
  } search{&prefixes, {}};
  dl_iterate_phdr(
      [](struct dl_phdr_info* info, size_t, void* arg) {
        auto* s = static_cast<Search*>(arg);
        if (info->dlpi_name == nullptr) return 0;
        const std::string_view name(info->dlpi_name);
        const size_t slash = name.rfind('/');
        const std::string_view base =
            slash == std::string_view::npos ? name : name.substr(slash + 1);
        for (std::string_view p : *s->prefixes) {
          if (base.substr(0, p.size()) == p) s->found.emplace_back(name);
        }
        return 0;
      },
      &search);
  return search.found;
}

// "libfoo.so" -> "foo", "bar.so" -> "bar".
std::string FilterNameFromFile(const std::string& path) {
  std::string base = path.substr(path.rfind('/') + 1);
  if (absl::EndsWith(base, ".so")) base.resize(base.size() - 3);
  if (absl::StartsWith(base, "lib")) base = base.substr(3);
  return base;
}

template <class Fn>
void Lookup(void* handle, const char* symbol, Fn*& out) {
  out = reinterpret_cast<Fn*>(dlsym(handle, symbol));
}

}  // namespace

bool LoadedPlugin::providesFilter(std::string_view name) const {
  for (const auto& n : filter_names_) {
    if (n == name) return true;
  }
  return false;
}

std::string VersionString(uint32_t version) {
  return absl::StrCat(version >> 16, ".", version & 0xffff);
}

absl::StatusOr<std::string> ResolvePlugin(std::string_view name,
                                          const std::vector<std::string>& dirs) {
  const std::string n(name);
  if (n.empty()) return absl::InvalidArgumentError("empty plugin name");
  if (n.find('/') != std::string::npos) {
    if (!IsRegularFile(n)) return absl::NotFoundError(absl::StrCat("plugin ", n, ": no such file"));
    return n;
  }
  std::vector<std::string> tried;
  for (const auto& dir : dirs) {
    for (const std::string& candidate :
         {absl::StrCat(dir, "/", n, ".so"), absl::StrCat(dir, "/lib", n, ".so")}) {
      if (IsRegularFile(candidate)) return candidate;
      tried.push_back(candidate);
    }
  }
  return absl::NotFoundError(
      absl::StrCat("plugin \"", n, "\" not found (tried ", absl::StrJoin(tried, ", "), ")"));
}

absl::StatusOr<std::unique_ptr<LoadedPlugin>> LoadPlugin(const std::string& path) {
  // Whatever OpenSSL objects were there before (none, in sluice) are not this plugin's doing.
  static const std::vector<std::string_view> kOpenSsl = {"libssl.so.3", "libcrypto.so.3"};
  const size_t openssl_before = LoadedObjects(kOpenSsl).size();
  // Two protobuf runtimes in one process share symbol names and each keeps its own descriptor
  // pool: a plugin built against another libprotobuf than sluice's crashes at its first message.
  static const std::vector<std::string_view> kProtobuf = {"libprotobuf.so.",
                                                          "libprotobuf-lite.so."};
  const std::vector<std::string> protobuf_before = LoadedObjects(kProtobuf);

  dlerror();
  void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    const char* err = dlerror();
    return absl::InvalidArgumentError(
        absl::StrCat("plugin ", path, ": cannot load: ", err != nullptr ? err : "dlopen failed"));
  }
  // From here on, a refused plugin stays mapped: dlclose would run its destructors and could
  // unmap code that its constructors registered somewhere. Refusal ends start-up anyway.
  std::vector<std::string> openssl = LoadedObjects(kOpenSsl);
  if (openssl.size() > openssl_before) {
    return absl::FailedPreconditionError(absl::StrCat(
        "plugin ", path, ": it brought OpenSSL into the process (", absl::StrJoin(openssl, ", "),
        "), which clashes with sluice's BoringSSL; build it without libssl.so.3/libcrypto.so.3"));
  }
  std::vector<std::string> protobuf = LoadedObjects(kProtobuf);
  if (protobuf.size() > protobuf_before.size()) {
    std::vector<std::string> added;
    for (const std::string& p : protobuf) {
      if (std::find(protobuf_before.begin(), protobuf_before.end(), p) == protobuf_before.end()) {
        added.push_back(p);
      }
    }
    return absl::FailedPreconditionError(
        absl::StrCat("plugin ", path, ": it brought another protobuf runtime into the process (",
                     absl::StrJoin(added, ", "), ") beside sluice's (",
                     protobuf_before.empty() ? "none" : absl::StrJoin(protobuf_before, ", "),
                     "); rebuild it against the libprotobuf sluice uses "
                     "(find_package(SluicePlugin) checks it)"));
  }

  Hooks hooks;
  Lookup(handle, "sl_on_abi_version", hooks.abi_version);
  if (hooks.abi_version == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(
        "plugin ", path,
        ": missing required symbol sl_on_abi_version (not a sluice plugin, or the hook is not "
        "exported: declare it with SL_EXPORT and C linkage)"));
  }
  const uint32_t version = hooks.abi_version();
  const uint32_t major = version >> 16;
  const uint32_t minor = version & 0xffff;
  if (major != SL_ABI_VERSION_MAJOR || minor > SL_ABI_VERSION_MINOR) {
    return absl::InvalidArgumentError(
        absl::StrCat("plugin ", path, ": built for plugin ABI ", VersionString(version),
                     ", but this sluice implements plugin ABI ", VersionString(SL_ABI_VERSION),
                     " (it loads plugins built for ", SL_ABI_VERSION_MAJOR, ".0 to ",
                     VersionString(SL_ABI_VERSION),
                     "); rebuild the plugin against this sluice's "
                     "sluice_plugin.h"));
  }
  Lookup(handle, "sl_on_config_new", hooks.config_new);
  if (hooks.config_new == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(
        "plugin ", path,
        ": missing required symbol sl_on_config_new (declare it with SL_EXPORT and C linkage)"));
  }
  LookupOptionalHooks(handle, minor, hooks);

  std::vector<std::string> names;
  if (hooks.filter_names != nullptr) {
    const char* const* list = hooks.filter_names();
    // Bounded: a list without its terminating NULL must not walk off into memory forever.
    for (size_t i = 0; list != nullptr && list[i] != nullptr && i < 1024; ++i) {
      names.emplace_back(list[i]);
    }
    if (names.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("plugin ", path, ": sl_on_filter_names lists no filter"));
    }
  } else {
    names.push_back(FilterNameFromFile(path));
  }
  std::vector<std::string> shown;
  for (const std::string& n : names) shown.push_back(log::EscapeUntrusted(n, kMaxFilterNameBytes));
  SLUICE_LOG(kInfo, "plugin %s loaded (ABI %s; filters: %s)", path, VersionString(version),
             absl::StrJoin(shown, ", "));
  // Frames in it are reported as this plugin's if the process crashes.
  crash::RegisterPlugin(reinterpret_cast<const void*>(hooks.abi_version), path);
  return std::make_unique<LoadedPlugin>(path, handle, version, hooks, std::move(names));
}

std::string DefaultPluginDir() {
  char buf[4096];
  const ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  if (n > 0) {
    buf[n] = '\0';
    std::string exe_dir(buf);
    exe_dir.resize(exe_dir.rfind('/'));
    struct stat st;
    const std::string build = exe_dir + "/plugins";
    if (stat(build.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) return build;
    const std::string installed = exe_dir + "/../" + SLUICE_PLUGIN_RELATIVE_DIR;
    if (stat(installed.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) return installed;
  }
  return SLUICE_PLUGIN_INSTALL_DIR;
}

}  // namespace sluice::plugin
