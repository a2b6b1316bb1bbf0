#!/bin/sh
# The compose `auth` service: the cluster's credentials, made once into /auth
# (./.cohort-auth on the host, gitignored) and kept across `docker compose up`s.
# nats nodes include them read-only; workers connect with /auth/worker.nk;
# clients on the host with .cohort-auth/client-web.nk; operators with
# .cohort-auth/admin.nk, or .cohort-auth/sys.nk for `nats server report`.
set -eu
cd /app
if [ ! -f /auth/auth.conf ]; then
  node dist/cli/main.js auth init --cluster demo --out /auth --client web
fi
node deploy/nats/cluster-secrets.mjs /auth n1:6222 n2:6222 n3:6222
# Owned by whoever owns the checkout, so the host's user can read the seeds
# (mode 0600); the containers read them as root.
chown -R "$(stat -c %u:%g /app)" /auth
