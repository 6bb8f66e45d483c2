#!/usr/bin/env bash
# Baseline for the PKI benchmark: the same files `plinth controller
# --init-only` stages (3 CAs, 11 leaves with the same subjects, SANs and
# usages, sa.key/sa.pub, 3 kubeconfigs), made with the openssl CLI, one new
# key per certificate, sequentially.
#
#   pki_openssl.sh DIR [ecdsa|rsa-2048]
#
# Needs OpenSSL >= 3.0 (`req -x509 -CA`). Writes DIR/pki; DIR must not hold a
# PKI already. Prints nothing on success.
set -euo pipefail

dir=${1:?usage: pki_openssl.sh DIR [ecdsa|rsa-2048]}
alg=${2:-ecdsa}

case "$alg" in
ecdsa)
    genkey() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1"; }
    leaf_ku="critical,digitalSignature"
    ;;
rsa-2048)
    genkey() { openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$1" 2>/dev/null; }
    leaf_ku="critical,digitalSignature,keyEncipherment"
    ;;
*)
    echo "pki_openssl.sh: unknown algorithm '$alg' (ecdsa or rsa-2048)" >&2
    exit 2
    ;;
esac

# Same inputs as the test spec: hostname node1, node/API/peer address
# 10.0.0.5, service IP 10.96.0.1, cluster domain cluster.local, API port 6443.
hostname=node1
addr=10.0.0.5
service_ip=10.96.0.1
domain=cluster.local
server="https://$addr:6443"

umask 077
pki="$dir/pki"
if [ -e "$pki/ca.crt" ]; then
    echo "pki_openssl.sh: $pki already holds a PKI" >&2
    exit 2
fi
mkdir -p "$pki/etcd"
chmod 700 "$pki" "$pki/etcd"

# A config without default extensions: every extension is given explicitly.
conf="$pki/.openssl.cnf"
printf '[req]\ndistinguished_name = dn\n[dn]\n' >"$conf"
trap 'rm -f "$conf"' EXIT

# ca NAME CN
ca() {
    genkey "$pki/$1.key"
    openssl req -config "$conf" -x509 -new -key "$pki/$1.key" -subj "/CN=$2" -days 3650 \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,digitalSignature,keyCertSign,cRLSign" \
        -addext "subjectKeyIdentifier=hash" \
        -out "$pki/$1.crt"
}

# leaf NAME CA SUBJECT EKU [SANS]
leaf() {
    local name=$1 ca=$2 subj=$3 eku=$4 sans=${5:-}
    local ext=(-addext "basicConstraints=critical,CA:FALSE"
        -addext "keyUsage=$leaf_ku"
        -addext "extendedKeyUsage=$eku"
        -addext "authorityKeyIdentifier=keyid")
    if [ -n "$sans" ]; then
        ext+=(-addext "subjectAltName=$sans")
    fi
    genkey "$pki/$name.key"
    openssl req -config "$conf" -x509 -new -key "$pki/$name.key" -subj "$subj" -days 365 \
        -CA "$pki/$ca.crt" -CAkey "$pki/$ca.key" "${ext[@]}" -out "$pki/$name.crt"
}

ca ca kubernetes
ca front-proxy-ca front-proxy-ca
ca etcd/ca etcd-ca

api_sans="DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc"
api_sans+=",DNS:kubernetes.default.svc.$domain,DNS:$hostname,DNS:localhost"
api_sans+=",DNS:api.example.com,IP:127.0.0.1,IP:$service_ip,IP:$addr,IP:fd00::5,IP:192.168.10.10"
leaf server ca /CN=kube-apiserver serverAuth "$api_sans"
leaf apiserver-kubelet-client ca "/O=system:masters/CN=kube-apiserver-kubelet-client" clientAuth
leaf admin ca "/O=system:masters/CN=kubernetes-admin" clientAuth
leaf scheduler ca /CN=system:kube-scheduler clientAuth
leaf controller-manager ca /CN=system:kube-controller-manager clientAuth
leaf plinth-api ca /CN=plinth-api serverAuth "$api_sans"
leaf front-proxy-client front-proxy-ca /CN=front-proxy-client clientAuth
leaf etcd/server etcd/ca "/CN=$hostname" serverAuth,clientAuth \
    "DNS:$hostname,DNS:localhost,IP:$addr,IP:fd00::5,IP:127.0.0.1,IP:::1"
leaf etcd/peer etcd/ca "/CN=$hostname" serverAuth,clientAuth \
    "DNS:$hostname,DNS:localhost,IP:$addr,IP:127.0.0.1,IP:::1"
leaf etcd/healthcheck-client etcd/ca /CN=kube-etcd-healthcheck-client clientAuth
leaf apiserver-etcd-client etcd/ca /CN=kube-apiserver-etcd-client clientAuth

genkey "$pki/sa.key"
openssl pkey -in "$pki/sa.key" -pubout -out "$pki/sa.pub"

# kubeconfig FILE LEAF USER
kubeconfig() {
    cat >"$pki/$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: plinth
  cluster:
    certificate-authority-data: $(base64 -w0 <"$pki/ca.crt")
    server: $server
contexts:
- name: $3@plinth
  context:
    cluster: plinth
    user: $3
current-context: $3@plinth
preferences: {}
users:
- name: $3
  user:
    client-certificate-data: $(base64 -w0 <"$pki/$2.crt")
    client-key-data: $(base64 -w0 <"$pki/$2.key")
EOF
}
kubeconfig admin.conf admin kubernetes-admin
kubeconfig scheduler.conf scheduler system:kube-scheduler
kubeconfig controller-manager.conf controller-manager system:kube-controller-manager

find "$pki" -name '*.crt' -exec chmod 644 {} +
chmod 644 "$pki/sa.pub"
