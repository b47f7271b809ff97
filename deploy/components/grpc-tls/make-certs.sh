#!/usr/bin/env bash
# Creates a private CA, the scaler's server certificate and KEDA's client certificate for the
# grpc-tls component, and the two Secret manifests (never commit them).
#   usage: make-certs.sh OUT_DIR [NAMESPACE (celery)] [DAYS (365)]
#   then:  kubectl apply -f OUT_DIR/secrets.yaml
# rustls rejects X.509 v1 certificates: every certificate gets v3 extensions.
set -euo pipefail
out=${1:?usage: make-certs.sh OUT_DIR [NAMESPACE] [DAYS]}
ns=${2:-celery}
days=${3:-365}
mkdir -p "$out"
cd "$out"
umask 077
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days "$days" \
  -subj "/CN=celery-scaler-ca" -keyout ca.key -out ca.crt \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
issue() { # issue NAME CN EXTFILE-CONTENT
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=$2" \
    -keyout "$1.key" -out "$1.csr" 2>/dev/null
  printf '%s\n' "$3" >"$1.ext"
  openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days "$days" \
    -extfile "$1.ext" -out "$1.crt" 2>/dev/null
  rm -f "$1.csr" "$1.ext"
}
issue server "celery-scaler.$ns.svc" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=DNS:celery-scaler.$ns.svc,DNS:celery-scaler.$ns.svc.cluster.local,DNS:celery-scaler.$ns,DNS:celery-scaler"
issue keda-client "keda-operator" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth"
b64() { base64 -w0 <"$1"; }
cat >secrets.yaml <<YAML
apiVersion: v1
kind: Secret
metadata:
  name: celery-scaler-tls
  namespace: $ns
type: kubernetes.io/tls
data:
  tls.crt: $(b64 server.crt)
  tls.key: $(b64 server.key)
  ca.crt: $(b64 ca.crt)
---
apiVersion: v1
kind: Secret
metadata:
  name: celery-scaler-keda-client-tls
  namespace: $ns
type: kubernetes.io/tls
data:
  tls.crt: $(b64 keda-client.crt)
  tls.key: $(b64 keda-client.key)
  ca.crt: $(b64 ca.crt)
YAML
echo "wrote $out/{ca,server,keda-client}.{crt,key} and $out/secrets.yaml (namespace $ns)"
