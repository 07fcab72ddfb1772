#!/usr/bin/env bash
# Peer suite: the sqlite3 command-line shell with the allocator under test.
#
# Builds a generated database (200k rows of pseudo-random text and blobs
# made by recursive CTEs), indexes it, runs joins, sorts, aggregates,
# window functions, JSON, FTS5, updates, deletes, VACUUM and an integrity
# check, once stock and once with LD_PRELOAD=$EBB_LIB. Debian's sqlite3 is
# built with SQLITE_SYSTEM_MALLOC and without lookaside, so every
# allocation goes to malloc. All query output, the .dump of the final
# database and the database file itself must be identical.
#
# Usage: tests/peer/sqlite.sh [ROWS]      (default ROWS=200000)
set -euo pipefail
# shellcheck source=tests/peer/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

ROWS=${1:-200000}
if ! [[ "$ROWS" =~ ^[0-9]+$ ]] || ((ROWS < 1000)); then
    peer_die "ROWS must be an integer >= 1000 (got '$ROWS')"
fi

peer_need_pkgs sqlite3
peer_setup_lib
peer_mktemp

# The workload. Pseudo-random numbers come from a linear congruential
# generator carried through recursive CTEs, never from random(), so both
# runs build exactly the same data.
write_workload() {
    cat <<EOF
.bail on
.headers off
.mode list
PRAGMA page_size = 4096;
PRAGMA cache_size = -65536;
PRAGMA temp_store = MEMORY;
PRAGMA threads = 2;
PRAGMA journal_mode = DELETE;

-- 4096 pseudo-random words of 2..11 letters.
CREATE TABLE words(id INTEGER PRIMARY KEY, w TEXT NOT NULL);
WITH RECURSIVE r(i, x) AS (
  SELECT 0, 20240601
  UNION ALL
  SELECT i + 1, (x * 1103515245 + 12345) % 2147483648 FROM r WHERE i < 4095
)
INSERT INTO words
SELECT i,
       substr(char(97 + x % 26, 97 + (x / 26) % 26, 97 + (x / 676) % 26,
                   97 + (x / 17576) % 26, 97 + (x / 456976) % 26,
                   97 + (x / 11881376) % 26, 101, 105, 111, 117, 97),
              1, 2 + (x / 7) % 10)
FROM r;

-- One long text to cut variable-sized strings and blobs from.
CREATE TABLE corpus(t TEXT NOT NULL);
INSERT INTO corpus SELECT group_concat(w, ' ') FROM (SELECT w FROM words ORDER BY id);
INSERT INTO corpus SELECT group_concat(t, ' | ') FROM (SELECT t FROM corpus, (SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3 UNION ALL SELECT 4));

CREATE TABLE items(
  id    INTEGER PRIMARY KEY,
  grp   INTEGER NOT NULL,
  name  TEXT NOT NULL,
  body  TEXT NOT NULL,
  data  BLOB,
  score REAL NOT NULL
);
CREATE TABLE tags(item INTEGER NOT NULL, tag TEXT NOT NULL);

BEGIN;
WITH RECURSIVE r(i, x, y) AS (
  SELECT 1, 77, 991
  UNION ALL
  SELECT i + 1, (x * 1103515245 + 12345) % 2147483648,
         (y * 69069 + 1) % 4294967296
  FROM r WHERE i < $ROWS
)
INSERT INTO items
SELECT i,
       x % 997,
       (SELECT w FROM words WHERE id = x % 4096) || '-' ||
         (SELECT w FROM words WHERE id = y % 4096) || '-' || i,
       substr((SELECT t FROM corpus WHERE rowid = 2), 1 + y % 60000,
              1 + (x / 3) % CASE WHEN y % 50 = 0 THEN 8000 ELSE 300 END),
       CASE WHEN x % 7 = 0 THEN NULL
            ELSE CAST(substr((SELECT t FROM corpus WHERE rowid = 1), 1 + x % 20000,
                             1 + y % CASE WHEN x % 97 = 0 THEN 20000 ELSE 300 END) AS BLOB)
       END,
       (x % 1000003) / 7.0
FROM r;

INSERT INTO tags
SELECT id, (SELECT w FROM words WHERE words.id = (items.id * 7 + k) % 4096)
FROM items, (SELECT 1 AS k UNION ALL SELECT 2 UNION ALL SELECT 3)
WHERE items.id % (k + 1) = 0;
COMMIT;

CREATE INDEX items_grp ON items(grp, score);
CREATE INDEX items_name ON items(name);
CREATE INDEX items_len ON items(length(body));
CREATE INDEX tags_tag ON tags(tag, item);

SELECT '== counts';
SELECT count(*), sum(length(body)), sum(length(data)), count(data), total(score) FROM items;
SELECT count(*), count(DISTINCT tag) FROM tags;

SELECT '== group by';
SELECT grp, count(*), sum(length(body)), min(name), max(name), round(avg(score), 6)
FROM items GROUP BY grp ORDER BY grp LIMIT 40;
SELECT length(body) / 100 AS b, count(*) FROM items GROUP BY b ORDER BY b;

SELECT '== join';
SELECT t.tag, count(*), sum(length(i.body)), max(i.id)
FROM tags t JOIN items i ON i.id = t.item
GROUP BY t.tag ORDER BY count(*) DESC, t.tag LIMIT 50;
SELECT count(*) FROM items a JOIN items b ON a.grp = b.grp AND b.id = a.id + 997;

SELECT '== sort (unindexed)';
SELECT id, substr(body, 1, 30) FROM items ORDER BY substr(body, 3, 40), id LIMIT 30;
SELECT sum(rn * length(k)) % 1000000007 FROM (
  SELECT row_number() OVER (ORDER BY substr(body, 2, 25) || name) AS rn, name AS k FROM items);

SELECT '== window';
SELECT grp, id, rk, round(run, 3) FROM (
  SELECT grp, id, rank() OVER (PARTITION BY grp ORDER BY score DESC, id) AS rk,
         sum(score) OVER (PARTITION BY grp ORDER BY id ROWS BETWEEN 5 PRECEDING AND CURRENT ROW) AS run
  FROM items)
WHERE rk <= 2 ORDER BY grp, rk LIMIT 60;

SELECT '== group_concat / json';
SELECT grp, length(gc), substr(gc, 1, 60), length(j)
FROM (SELECT grp, group_concat(name, ',') AS gc, json_group_array(json_object('id', id, 'n', name)) AS j
      FROM (SELECT grp, name, id FROM items ORDER BY grp, id) GROUP BY grp)
ORDER BY length(gc) DESC, grp LIMIT 20;
SELECT count(*), sum(value) FROM (SELECT json_group_array(id) AS a FROM items WHERE grp < 50), json_each(a);

SELECT '== distinct / subqueries';
SELECT count(DISTINCT substr(body, 1, 8)), count(DISTINCT data) FROM items;
SELECT count(*) FROM items WHERE name IN (SELECT name FROM items WHERE grp % 13 = 0 ORDER BY score LIMIT 5000);

SELECT '== fts5';
CREATE VIRTUAL TABLE docs USING fts5(name, body);
INSERT INTO docs(rowid, name, body) SELECT id, name, body FROM items WHERE id % 3 = 0;
SELECT count(*) FROM docs WHERE docs MATCH (SELECT w FROM words WHERE id = 17);
SELECT rowid, name FROM docs WHERE docs MATCH (SELECT w FROM words WHERE id = 99) || '*' ORDER BY rank, rowid LIMIT 10;
INSERT INTO docs(docs) VALUES('optimize');

SELECT '== update / delete';
BEGIN;
UPDATE items SET body = body || ' ' || body WHERE id % 11 = 0;
UPDATE items SET data = zeroblob(length(body) % 5000) WHERE id % 17 = 0;
DELETE FROM items WHERE id % 3 = 1;
DELETE FROM tags WHERE item NOT IN (SELECT id FROM items);
DELETE FROM docs WHERE rowid % 2 = 0;
COMMIT;
SELECT count(*), sum(length(body)), sum(length(data)) FROM items;

SELECT '== vacuum';
VACUUM;
PRAGMA integrity_check;
SELECT count(*), sum(length(body)) FROM items;
SELECT name FROM sqlite_schema ORDER BY name;

SELECT '== in-memory db';
ATTACH ':memory:' AS mem;
CREATE TABLE mem.m AS SELECT id, grp, name || body AS nb FROM items WHERE id % 2 = 0;
CREATE INDEX mem.m_nb ON m(nb);
SELECT count(*), sum(length(nb)), min(nb) = (SELECT nb FROM mem.m ORDER BY nb LIMIT 1) FROM mem.m;
DETACH mem;
EOF
}

# run_one MODE: run the workload in $PEER_TMP/MODE; leave out.txt, dump.txt
# and db there.
run_one() {
    local mode=$1 dir="$PEER_TMP/$1" start
    mkdir -p "$dir"
    start=$(peer_now)
    # (No "( ... ) || die" here: that would switch off set -e inside.)
    if ! peer_run "$mode" sqlite3 -bail "$dir/db" <"$PEER_TMP/workload.sql" >"$dir/out.txt"; then
        peer_die "sqlite3 failed in the $mode run (see $dir)"
    fi
    if ! peer_run "$mode" sqlite3 -bail "$dir/db" .dump >"$dir/dump.txt"; then
        peer_die "sqlite3 .dump failed in the $mode run (see $dir)"
    fi
    peer_log "$mode run: $(peer_elapsed "$start")s, $(wc -l <"$dir/out.txt") output lines," \
        "$(stat -c %s "$dir/db") byte database"
}

write_workload >"$PEER_TMP/workload.sql"
run_one stock
run_one ebb

grep -qx 'ok' "$PEER_TMP/stock/out.txt" || peer_die "stock run: integrity_check did not say ok"

rc=0
peer_compare "query output" "$PEER_TMP/stock/out.txt" "$PEER_TMP/ebb/out.txt" || rc=1
peer_compare ".dump of final database" "$PEER_TMP/stock/dump.txt" "$PEER_TMP/ebb/dump.txt" || rc=1
peer_compare "database file bytes" "$PEER_TMP/stock/db" "$PEER_TMP/ebb/db" || rc=1

if ((rc != 0)); then
    peer_log "FAIL"
    exit 1
fi
peer_log "PASS (rows=$ROWS)"
