#!/usr/bin/env bash
# Test certificates for kbridge's secured test broker and HTTPS targets,
# made with openssl alone (no network).
#
#   scripts/test-certs.sh DIR
#
# Writes into DIR (once; an existing complete set is kept):
#   ca.pem, ca.key            the test CA
#   server.pem, server.key    a server certificate for IP 127.0.0.1 only (so
#                             "localhost" is a hostname mismatch), signed by the CA
#   server-keystore.pem       server.key (PKCS#8) + server.pem + ca.pem: a Kafka
#                             PEM keystore
#   client.pem, client.key    a client certificate (CN=kbridge-client), signed by
#                             the CA, for mutual TLS
#   rogue-ca.pem, rogue-client.pem, rogue-client.key
#                             a CA nobody trusts and a client certificate it signed
# Keys are unencrypted (test material only) and valid for 10 years.
set -euo pipefail

dir=${1:?usage: $0 DIR}
mkdir -p "$dir"
cd "$dir"
[[ -s rogue-client.key && -s server-keystore.pem ]] && exit 0

command -v openssl >/dev/null || { echo "test-certs: openssl not found" >&2; exit 1; }

days=3650
quiet() { "$@" >/dev/null 2>&1 || { echo "test-certs: failed: $*" >&2; "$@"; exit 1; }; }

# A CA: NAME.key, NAME.pem.
ca() {
  quiet openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days $days \
    -keyout "$1.key" -out "$1.pem" -subj "/CN=$2" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
}

# A leaf certificate NAME.pem / NAME.key (PKCS#8) signed by CA, with EXT.
leaf() {
  local name=$1 cn=$2 signer=$3 ext=$4
  quiet openssl req -newkey rsa:2048 -nodes -sha256 -keyout "$name.key" -out "$name.csr" -subj "/CN=$cn"
  printf '%s\n' "$ext" >"$name.ext"
  quiet openssl x509 -req -in "$name.csr" -CA "$signer.pem" -CAkey "$signer.key" -CAcreateserial \
    -days $days -sha256 -out "$name.pem" -extfile "$name.ext"
  rm -f "$name.csr" "$name.ext"
}

ca ca "kbridge test CA"
leaf server 127.0.0.1 ca "subjectAltName=IP:127.0.0.1
extendedKeyUsage=serverAuth
keyUsage=critical,digitalSignature,keyEncipherment"
leaf client kbridge-client ca "extendedKeyUsage=clientAuth
keyUsage=critical,digitalSignature,keyEncipherment"
ca rogue-ca "kbridge rogue CA"
leaf rogue-client kbridge-client rogue-ca "extendedKeyUsage=clientAuth
keyUsage=critical,digitalSignature,keyEncipherment"
cat server.key server.pem ca.pem >server-keystore.pem
rm -f ./*.srl
echo "test-certs: wrote $(pwd)" >&2
