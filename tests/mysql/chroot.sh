#!/bin/sh
# Oracle MySQL for the tests, on a machine that has only MariaDB: Debian sid's MySQL server
# (9.7 when written) in a chroot, listening on 127.0.0.1. Needs root and Debian's mirror.
#
#   tests/mysql/chroot.sh up     build the chroot the first time (debootstrap, a few minutes),
#                                then start mysqld; prints the URI for ETL_TEST_MYSQL_URI
#   tests/mysql/chroot.sh down   stop it
#   make test-mysql              up, then the whole test suite against it
#
# MYSQL_CHROOT (default /var/tmp/etl-mysql-sid) and MYSQL_CHROOT_PORT (default 3307) move it.
# A chroot because sid's mysqld needs a newer C library than bookworm's.
set -eu
R=${MYSQL_CHROOT:-/var/tmp/etl-mysql-sid}
PORT=${MYSQL_CHROOT_PORT:-3307}
SOCK=/tmp/mysqld$PORT.sock  # inside the chroot

mounted() { mountpoint -q "$R/$1"; }

case "${1:-up}" in
up)
  if [ ! -x "$R/usr/sbin/mysqld" ]; then
    command -v debootstrap >/dev/null || apt-get install -y debootstrap
    debootstrap --variant=minbase sid "$R" http://deb.debian.org/debian
    # sid's Release file may have expired by this machine's clock
    echo 'Acquire::Check-Valid-Until "false";' > "$R/etc/apt/apt.conf.d/99no-valid-until"
    chroot "$R" apt-get update
    chroot "$R" env DEBIAN_FRONTEND=noninteractive apt-get install -y mysql-server-core mysql-client-core
  fi
  mounted proc || mount -t proc proc "$R/proc"
  mounted dev || mount --bind /dev "$R/dev"
  mounted sys || mount -t sysfs sys "$R/sys"
  if chroot "$R" mysqladmin --no-defaults -uroot --socket=$SOCK ping >/dev/null 2>&1; then
    echo "mysqld already up: mysql://root@127.0.0.1:$PORT/etl_test"; exit 0
  fi
  [ -d "$R/var/lib/mysql-test/mysql" ] ||
    chroot "$R" mysqld --no-defaults --initialize-insecure --user=root --datadir=/var/lib/mysql-test
  mkdir -p "$R/var/lib/mysql-files"  # secure_file_priv's default: mysqld refuses to start without it
  # local-infile: the load's LOAD DATA LOCAL (off by default on MySQL 8+).
  # log-bin-trust-function-creators: binary logging is on by default on MySQL 8+, and then only
  # SUPER may create triggers (sql/schema.mysql.sql says so); the tests' non-root users need it.
  setsid chroot "$R" /usr/sbin/mysqld --no-defaults --user=root --datadir=/var/lib/mysql-test \
    --port=$PORT --bind-address=127.0.0.1 --socket=$SOCK --mysqlx=OFF --local-infile=1 \
    --log-bin-trust-function-creators=1 \
    --pid-file=/tmp/mysqld$PORT.pid --log-error=/var/log/mysqld$PORT.err </dev/null >/dev/null 2>&1 &
  for _ in $(seq 1 60); do
    if chroot "$R" mysqladmin --no-defaults -uroot --socket=$SOCK ping >/dev/null 2>&1; then
      echo "$(chroot "$R" mysqld --version) up: mysql://root@127.0.0.1:$PORT/etl_test"; exit 0
    fi
    sleep 1
  done
  echo "mysqld did not start: see $R/var/log/mysqld$PORT.err" >&2; exit 1
  ;;
down)
  chroot "$R" mysqladmin --no-defaults -uroot --socket=$SOCK shutdown 2>/dev/null || echo "mysqld was not running"
  for m in sys dev proc; do mounted $m && umount "$R/$m"; done
  ;;
*)
  echo "usage: $0 up|down" >&2; exit 2
  ;;
esac
