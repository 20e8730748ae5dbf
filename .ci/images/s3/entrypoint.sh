#!/bin/bash
# moto's S3 server behind haproxy's TLS; exits when either does.
set -eu
umask 077
cat /certs/cert.pem /certs/key.pem >/tmp/server.pem
cat >/tmp/haproxy.cfg <<CFG
global
  log stdout format raw local0 warning
defaults
  mode http
  timeout connect 5s
  timeout client 300s
  timeout server 300s
frontend s3
  bind :9000 ssl crt /tmp/server.pem
  default_backend moto
backend moto
  server moto 127.0.0.1:9001
CFG
moto_server -H 127.0.0.1 -p 9001 &
haproxy -W -db -f /tmp/haproxy.cfg &
wait -n
