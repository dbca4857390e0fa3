#!/usr/bin/env bash
# User data of the indexer worker launch templates: fetch the worker binary, start it on the
# instance's private IP, and power the instance off when the worker exits.
#
# Configuration is read from the environment, so the template only has to prepend exports:
#   WORKER_ARTIFACT     s3://bucket/key of the release binary (required unless WORKER_BINARY)
#   WORKER_SHA256       optional sha256 of that binary; a mismatch stops the boot
#   REFRESH_SECRET_ID   Secrets Manager id holding api_db_url, es_url, worker_token (required)
#   WORKER_PORT         default 8003
#   IDLE_SHUTDOWN_SECS  default 3600: a forgotten instance stops (and, on AWS, terminates)
#   SENSITIVE_TERMS_URL the sensitive-terms list a dual-write task reads (the Lambdas' own)
#   WORKER_BINARY       path of an already built binary (the LocalStack emulation uses the
#                       workspace build and skips the download)
#   INSTANCE_IP         set by the LocalStack EC2 emulation (a 127.0.x.y address); on AWS the
#                       private IP comes from the instance metadata service (IMDSv2)
#
# This file deliberately contains no dollar-brace sequence: it can be embedded in a
# CloudFormation Fn::Sub (e.g. a header of `export WORKER_ARTIFACT=...` lines followed by this
# script) without escaping. On AWS the launch template must set
# InstanceInitiatedShutdownBehavior=terminate so the final poweroff terminates the instance.
# Not `set -u`: unset variables are read as empty to apply the defaults below.
set -eo pipefail

[ -n "$WORKER_PORT" ] || WORKER_PORT=8003
[ -n "$IDLE_SHUTDOWN_SECS" ] || IDLE_SHUTDOWN_SECS=3600
LOCAL=0
[ -n "$INSTANCE_IP" ] && LOCAL=1

log() { echo "indexer-worker user-data: $*" >&2; }

if [ "$LOCAL" = 1 ]; then
  BIND_IP="$INSTANCE_IP"
else
  IMDS=http://169.254.169.254/latest
  TOKEN=$(curl -fsS -X PUT "$IMDS/api/token" -H "X-aws-ec2-metadata-token-ttl-seconds: 300")
  BIND_IP=$(curl -fsS -H "X-aws-ec2-metadata-token: $TOKEN" "$IMDS/meta-data/local-ipv4")
  if [ -z "$AWS_REGION" ]; then
    AWS_REGION=$(curl -fsS -H "X-aws-ec2-metadata-token: $TOKEN" "$IMDS/meta-data/placement/region")
    export AWS_REGION
  fi
fi

if [ -n "$WORKER_BINARY" ]; then
  BINARY="$WORKER_BINARY"
else
  [ -n "$WORKER_ARTIFACT" ] || { log "WORKER_ARTIFACT is not set"; exit 1; }
  # A fresh folder per boot: instances emulated on one host never share the file.
  BINARY=$(mktemp -d /tmp/indexer-worker.XXXXXX)/indexer-worker
  aws s3 cp --only-show-errors "$WORKER_ARTIFACT" "$BINARY"
  if [ -n "$WORKER_SHA256" ]; then
    echo "$WORKER_SHA256  $BINARY" | sha256sum -c --quiet - || { log "checksum mismatch for $WORKER_ARTIFACT"; exit 1; }
  fi
  chmod 0755 "$BINARY"
fi
[ -x "$BINARY" ] || { log "worker binary $BINARY is missing or not executable"; exit 1; }
[ -n "$REFRESH_SECRET_ID" ] || [ -n "$WORKER_TOKEN" ] \
  || { log "REFRESH_SECRET_ID is not set"; exit 1; }
export REFRESH_SECRET_ID

log "starting $BINARY on $BIND_IP:$WORKER_PORT"
if [ "$LOCAL" = 1 ]; then
  # Emulated instances share the host's /tmp: once the worker runs (its inode lives on while
  # it does) the download goes, or every launch would leave 60 MB behind. In a session of its
  # own: a worker terminated within the 10 s (a short SQL job) must not take the remover along.
  [ -n "$WORKER_BINARY" ] || setsid sh -c 'sleep 10; rm -rf "$1"' rm-download "$(dirname "$BINARY")" </dev/null >/dev/null 2>&1 &
  # The emulation stops the instance by signalling this process group.
  exec "$BINARY" --bind "$BIND_IP:$WORKER_PORT" --idle-shutdown-secs "$IDLE_SHUTDOWN_SECS"
fi

# On AWS: whatever way the worker ends (idle, SIGTERM, crash), stop paying for the instance.
status=0
"$BINARY" --bind "$BIND_IP:$WORKER_PORT" --idle-shutdown-secs "$IDLE_SHUTDOWN_SECS" || status=$?
log "worker exited with status $status; powering off"
shutdown -h now
