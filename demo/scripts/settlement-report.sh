#!/bin/sh
# settlement-report: the finance demo's report job, run as a Nightshift
# *program handler* (see README, "Program handlers"). It writes the business
# day's settlement summary from the demo ledger to
# OUT_DIR/settlement-BUSINESS_DATE.txt.
#
# Usage (chosen by the executor's operator, never by a DAG):
#   settlement-report.sh OUT_DIR
# with the demo database URL in DEMO_DATABASE_URL (sqlite://FILE or
# postgres://...), read with the sqlite3 or psql client.
#
# Idempotent: the report depends only on the business date and the ledger,
# and replaces the file atomically, so a retried or failed-over item writes
# the same file again. Exit 75 (retryable) when the database cannot be read.
set -eu

out="${1:?usage: settlement-report.sh OUT_DIR}"
db="${DEMO_DATABASE_URL:?DEMO_DATABASE_URL is not set}"
date="${NIGHTSHIFT_BUSINESS_DATE:?not run by a Nightshift executor}"
case "$date" in
  [0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]) ;;
  *) echo "bad business date: $date" >&2; exit 2 ;;
esac

case "$db" in
  sqlite://*)
    file="${db#sqlite://}"
    file="${file%%\?*}"
    query() { sqlite3 -batch -noheader -cmd ".timeout 5000" "$file" "$1"; }
    ;;
  postgres://* | postgresql://*)
    query() { psql "$db" -X -A -t -q -c "$1"; }
    ;;
  *)
    echo "unsupported database URL (expected sqlite:// or postgres://)" >&2
    exit 2
    ;;
esac

echo "::progress 0/2 reading the ledger for $date"
if ! postings=$(query "SELECT COUNT(*), COALESCE(SUM(debit), 0), COALESCE(SUM(credit), 0)
                       FROM demo_postings WHERE business_date = '$date'"); then
  echo "cannot read the demo ledger" >&2
  exit 75
fi
if ! collections=$(query "SELECT status, COUNT(*), COALESCE(SUM(amount), 0) FROM demo_collections
                          WHERE business_date = '$date' GROUP BY status ORDER BY status"); then
  echo "cannot read the demo collections" >&2
  exit 75
fi
echo "::progress 1/2 writing the report"

mkdir -p "$out"
report="$out/settlement-$date.txt"
tmp="$report.tmp.$$"
{
  echo "settlement report for business date $date"
  echo "postings (count|debit|credit): $postings"
  echo "collections by status (status|count|amount):"
  if [ -n "$collections" ]; then echo "$collections" | sed 's/^/  /'; else echo "  none"; fi
} > "$tmp"
mv -f "$tmp" "$report"
echo "wrote $report"
echo "::progress 2/2 done"
