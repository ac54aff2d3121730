/* The crypto a TLS 1.3 server does per handshake, timed one operation at a time in the BoringSSL
 * that sluice links (Debian's android-libboringssl): the X25519 key share (a key pair and the
 * shared secret), the ECDSA P-256 CertificateVerify signature, and SHA-256 over a transcript-sized
 * input. tools/bench/tls compiles and runs it next to `openssl speed` (OpenSSL 3.0, what nginx
 * and HAProxy use), so that a handshake's CPU can be split into the library's crypto and the
 * rest. Prints "name microseconds-per-operation" lines. */
#include <openssl/crypto.h>
#include <openssl/curve25519.h>
#include <openssl/ec_key.h>
#include <openssl/ecdsa.h>
#include <openssl/nid.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint8_t pub[32], priv[32], peer_pub[32], peer_priv[32], secret[32];
static EC_KEY* key;
static uint8_t digest[32] = {1};
static uint8_t sig[128]; /* a DER P-256 signature is at most 72 bytes */
static unsigned sig_len;
static uint8_t transcript[1024], md[SHA256_DIGEST_LENGTH];

static void x25519_keypair(void) { X25519_keypair(pub, priv); }
static void x25519_shared(void) {
  if (!X25519(secret, priv, peer_pub)) abort();
}
static void ecdsa_sign(void) {
  sig_len = sizeof(sig);
  if (!ECDSA_sign(0, digest, sizeof(digest), sig, &sig_len, key)) abort();
}
static void ecdsa_verify(void) {
  if (!ECDSA_verify(0, digest, sizeof(digest), sig, sig_len, key)) abort();
}
static void sha256_1k(void) { SHA256(transcript, sizeof(transcript), md); }

/* Runs f for at least `seconds` (after a warm-up) and prints microseconds per call. */
static void bench(const char* name, void (*f)(void), double seconds) {
  for (int i = 0; i < 100; i++) f();
  long n = 0;
  const double start = now();
  double elapsed;
  do {
    for (int i = 0; i < 100; i++) f();
    n += 100;
    elapsed = now() - start;
  } while (elapsed < seconds);
  printf("%s %.2f\n", name, elapsed / (double)n * 1e6);
}

int main(int argc, char** argv) {
  const double seconds = argc > 1 ? atof(argv[1]) : 0.5;
  printf("has_asm %d\n", CRYPTO_has_asm());
  X25519_keypair(peer_pub, peer_priv);
  X25519_keypair(pub, priv);
  key = EC_KEY_new_by_curve_name(NID_X9_62_prime256v1);
  if (key == NULL || !EC_KEY_generate_key(key)) return 1;
  ecdsa_sign();
  bench("x25519_keypair", x25519_keypair, seconds);
  bench("x25519_shared", x25519_shared, seconds);
  bench("ecdsa_p256_sign", ecdsa_sign, seconds);
  bench("ecdsa_p256_verify", ecdsa_verify, seconds);
  bench("sha256_1k", sha256_1k, seconds);
  EC_KEY_free(key);
  return 0;
}
