#!/bin/sh
# Provision the lake on MinIO: buckets, policies and least-privilege users.
#
# Run once by the minio-init service (quay.io/minio/mc image) after MinIO is healthy.
# It is the only place that uses MinIO's root credentials. Every step is idempotent:
# buckets are created only when missing, policies and users are upserted (a rerun
# applies edited policy files and rotated secret keys from .env), and attaching a
# policy that is already attached is not an error.
#
# The image is minimal (no grep, sed or jq), so this script uses only sh builtins and mc.

set -eu

MINIO_URL="${MINIO_URL:-http://minio:9000}"
POLICY_DIR="${POLICY_DIR:-/opt/minio-init/policies}"
ALIAS=lake

: "${MINIO_ROOT_USER:?MINIO_ROOT_USER is required}"
: "${MINIO_ROOT_PASSWORD:?MINIO_ROOT_PASSWORD is required}"
: "${MINIO_INGESTOR_ACCESS_KEY:?MINIO_INGESTOR_ACCESS_KEY is required}"
: "${MINIO_INGESTOR_SECRET_KEY:?MINIO_INGESTOR_SECRET_KEY is required}"
: "${MINIO_PIPELINE_ACCESS_KEY:?MINIO_PIPELINE_ACCESS_KEY is required}"
: "${MINIO_PIPELINE_SECRET_KEY:?MINIO_PIPELINE_SECRET_KEY is required}"
: "${MINIO_READER_ACCESS_KEY:?MINIO_READER_ACCESS_KEY is required}"
: "${MINIO_READER_SECRET_KEY:?MINIO_READER_SECRET_KEY is required}"

# The policy files name these buckets literally; refuse to create anything else.
BRONZE_BUCKET="${LAKEHOUSE_BRONZE_BUCKET:-bronze}"
SILVER_BUCKET="${LAKEHOUSE_SILVER_BUCKET:-silver}"
GOLD_BUCKET="${LAKEHOUSE_GOLD_BUCKET:-gold}"

log() {
    printf 'minio-init: %s\n' "$*"
}

die() {
    printf 'minio-init: ERROR: %s\n' "$*" >&2
    exit 1
}

check_bucket_name() {
    # $1 = variable name, $2 = bucket name the policies use, $3 = configured bucket name
    if [ "$3" != "$2" ]; then
        die "$1 is '$3', but minio/policies/*.json grant access to a bucket named '$2'; edit the policies too, or keep the default name"
    fi
}

check_user() {
    # $1 = variable prefix (for messages), $2 = access key, $3 = secret key
    if [ "${#2}" -lt 3 ]; then
        die "$1_ACCESS_KEY must be at least 3 characters long"
    fi
    if [ "${#3}" -lt 8 ]; then
        die "$1_SECRET_KEY must be at least 8 characters long"
    fi
    if [ "$2" = "$MINIO_ROOT_USER" ]; then
        die "$1_ACCESS_KEY must differ from MINIO_ROOT_USER: services never use the root user"
    fi
}

attach_policy() {
    # $1 = policy name, $2 = user (access key)
    if output=$(mc admin policy attach "$ALIAS" "$1" --user "$2" 2>&1); then
        log "attached policy $1 to user $2"
        return 0
    fi
    case "$output" in
        *"already in effect"* | *"no net effect"* | *"already attached"*)
            log "policy $1 is already attached to user $2"
            ;;
        *)
            printf '%s\n' "$output" >&2
            die "cannot attach policy $1 to user $2"
            ;;
    esac
}

provision_user() {
    # $1 = role (policy file name without .json), $2 = access key, $3 = secret key
    policy="lakehouse-$1"
    policy_file="$POLICY_DIR/$1.json"
    [ -r "$policy_file" ] || die "policy file $policy_file is missing"
    mc admin policy create "$ALIAS" "$policy" "$policy_file" >/dev/null
    log "policy $policy created or updated from $1.json"
    mc admin user add "$ALIAS" "$2" "$3" >/dev/null
    log "user $2 ($1) created or updated"
    attach_policy "$policy" "$2"
}

check_bucket_name LAKEHOUSE_BRONZE_BUCKET bronze "$BRONZE_BUCKET"
check_bucket_name LAKEHOUSE_SILVER_BUCKET silver "$SILVER_BUCKET"
check_bucket_name LAKEHOUSE_GOLD_BUCKET gold "$GOLD_BUCKET"

check_user MINIO_INGESTOR "$MINIO_INGESTOR_ACCESS_KEY" "$MINIO_INGESTOR_SECRET_KEY"
check_user MINIO_PIPELINE "$MINIO_PIPELINE_ACCESS_KEY" "$MINIO_PIPELINE_SECRET_KEY"
check_user MINIO_READER "$MINIO_READER_ACCESS_KEY" "$MINIO_READER_SECRET_KEY"
if [ "$MINIO_INGESTOR_ACCESS_KEY" = "$MINIO_PIPELINE_ACCESS_KEY" ] ||
    [ "$MINIO_INGESTOR_ACCESS_KEY" = "$MINIO_READER_ACCESS_KEY" ] ||
    [ "$MINIO_PIPELINE_ACCESS_KEY" = "$MINIO_READER_ACCESS_KEY" ]; then
    die "MINIO_INGESTOR_ACCESS_KEY, MINIO_PIPELINE_ACCESS_KEY and MINIO_READER_ACCESS_KEY must all differ"
fi

log "connecting to $MINIO_URL"
mc alias set "$ALIAS" "$MINIO_URL" "$MINIO_ROOT_USER" "$MINIO_ROOT_PASSWORD" >/dev/null
mc ready "$ALIAS" >/dev/null

for bucket in "$BRONZE_BUCKET" "$SILVER_BUCKET" "$GOLD_BUCKET"; do
    mc mb --ignore-existing "$ALIAS/$bucket" >/dev/null
    log "bucket $bucket is present"
done

provision_user ingestor "$MINIO_INGESTOR_ACCESS_KEY" "$MINIO_INGESTOR_SECRET_KEY"
provision_user pipeline "$MINIO_PIPELINE_ACCESS_KEY" "$MINIO_PIPELINE_SECRET_KEY"
provision_user reader "$MINIO_READER_ACCESS_KEY" "$MINIO_READER_SECRET_KEY"

log "done"
