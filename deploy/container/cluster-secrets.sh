#!/bin/sh
# The two secrets of compose.cluster.yaml, made once with a random password:
#   secrets/postgres_password        the password alone (postgres: POSTGRES_PASSWORD_FILE)
#   secrets/watchdesk_database_url   postgresql://watchdesk:PASSWORD@postgres:5432/watchdesk
#                                    (the agents: cluster.database_url_file)
# Usage: deploy/container/cluster-secrets.sh [DIR]     (default: deploy/container/secrets)
#
# Existing files are kept (the database was initialised with that password; a new one would
# lock the agents out): delete both, and the postgres-data volume, to start over.
#
# Permissions: the directory is 0700, so no other user of the host reads the secrets; the files
# are 0644, because compose bind-mounts each file as it is and the readers inside the
# containers are not root (the agent is uid 10001, PostgreSQL's entrypoint reads its file as
# the postgres user). The directory, not the file, is what guards them on the host.
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
DIR=${1:-$HERE/secrets}

mkdir -p "$DIR"
chmod 0700 "$DIR"
for name in postgres_password watchdesk_database_url; do
    if [ -d "$DIR/$name" ]; then
        # Docker makes a missing bind-mount source as a directory: compose ran before this.
        echo "cluster-secrets: $DIR/$name is a directory (compose up ran first?): remove it" >&2
        exit 1
    fi
done
if [ -s "$DIR/postgres_password" ] && [ -s "$DIR/watchdesk_database_url" ]; then
    echo "cluster-secrets: $DIR already holds both secrets; kept"
    exit 0
fi
# 32 characters from [A-Za-z0-9_-]: nothing that needs escaping in a URL.
password=$(head -c 24 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')
umask 022
printf '%s\n' "$password" >"$DIR/postgres_password"
printf 'postgresql://watchdesk:%s@postgres:5432/watchdesk\n' "$password" \
    >"$DIR/watchdesk_database_url"
chmod 0644 "$DIR/postgres_password" "$DIR/watchdesk_database_url"
echo "cluster-secrets: wrote $DIR/postgres_password and $DIR/watchdesk_database_url"
