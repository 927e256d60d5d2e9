#!/usr/bin/env bash
# Writes the nginx configuration the gateway comparisons run nginx with (perf/gateway.sh,
# perf/gateway-cpu.sh), so both measure the same nginx:
#
#   perf/nginx-conf.sh DIR UPSTREAM_PORT LISTEN_PORT     # writes DIR/nginx.conf
#
# `worker_processes auto`, no access log, an `upstream` block with `keepalive 64` and HTTP/1.1 to
# it (`Connection ""`), and `keepalive_requests` raised on both sides so neither side closes a
# connection during a run. Every path nginx writes stays under DIR.
set -euo pipefail
dir=$1 upstream_port=$2 listen_port=$3
mkdir -p "$dir"
cat >"$dir/nginx.conf" <<CONF
daemon off;
worker_processes auto;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $dir/body;
    proxy_temp_path $dir/proxy;
    fastcgi_temp_path $dir/fastcgi;
    uwsgi_temp_path $dir/uwsgi;
    scgi_temp_path $dir/scgi;
    upstream perf_upstream {
        server 127.0.0.1:$upstream_port;
        keepalive 64;
        keepalive_requests 1000000;
    }
    server {
        listen 127.0.0.1:$listen_port;
        keepalive_requests 1000000;
        location / {
            proxy_pass http://perf_upstream;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
CONF
