#!/usr/bin/python3
"""The auction application: the middle of the web experiment's two tiers.

nginx in the web VM passes requests to this server (HTTP/1.1 keep-alive over loopback); the
server answers from PostgreSQL in the database VM through a pool of connections opened at
start (so vsnoopd sees their handshakes). Pages are plain HTML.

    GET  /browse?category=C&page=P   25 open auctions of a category, soonest ending first
                                     (items joined with their sellers)
    GET  /item?id=N                  one item, its seller, and its 20 latest bids with the
                                     bidders' names (a join of items, users and bids)
    GET  /photo?id=N                 the item's photo, stored in the database (about 48 KB)
    POST /bid    item=N&user=U&amount=A   a bid: one transaction that locks the item, checks
                                     the amount against the highest bid, inserts the bid and
                                     updates the item
    POST /sell?user=U&category=C&title=T  (body: a photo) a new item with its photo
    GET  /health                     "ok" once every pooled connection answers

    app.py serve --listen 127.0.0.1:8000 --db-host 10.77.0.12 [--pool 32]
    app.py populate --db-host /tmp/sockdir [--items 10000 ...]   creates the schema and data
"""
import argparse
import html
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psycopg2

DB_NAME = "auction"
DB_USER = "auction"

SCHEMA = """
CREATE TABLE users (
    id integer PRIMARY KEY, nickname text NOT NULL, region integer NOT NULL,
    rating integer NOT NULL, created timestamptz NOT NULL);
CREATE TABLE categories (id integer PRIMARY KEY, name text NOT NULL);
CREATE TABLE items (
    id serial PRIMARY KEY, seller integer NOT NULL REFERENCES users,
    category integer NOT NULL REFERENCES categories, title text NOT NULL,
    description text NOT NULL, initial_price numeric(10,2) NOT NULL,
    max_bid numeric(10,2) NOT NULL, nb_bids integer NOT NULL DEFAULT 0,
    end_date timestamptz NOT NULL);
CREATE TABLE photos (item integer PRIMARY KEY REFERENCES items, data bytea NOT NULL);
CREATE TABLE bids (
    id serial PRIMARY KEY, item integer NOT NULL REFERENCES items,
    bidder integer NOT NULL REFERENCES users, amount numeric(10,2) NOT NULL,
    placed timestamptz NOT NULL);
CREATE INDEX items_by_category ON items (category, end_date);
CREATE INDEX bids_by_item ON bids (item, placed DESC);
"""

# Deterministic data (setseed), generated inside the database.
POPULATE = """
SELECT setseed(0.42);
INSERT INTO users SELECT i, 'user' || i, i %% 50, (random() * 100)::int,
    now() - random() * interval '1000 days' FROM generate_series(1, %(users)s) i;
INSERT INTO categories SELECT i, 'category ' || i FROM generate_series(1, %(categories)s) i;
INSERT INTO items (id, seller, category, title, description, initial_price, max_bid, end_date)
    SELECT i, 1 + (random() * (%(users)s - 1))::int, 1 + (i %% %(categories)s),
           'item ' || i || ' ' || md5(i::text),
           repeat(md5((i * 7)::text) || ' ', 12 + (random() * 24)::int),
           p, p, now() + random() * interval '7 days'
    FROM (SELECT i, round((1 + random() * 200)::numeric, 2) AS p
          FROM generate_series(1, %(items)s) i) s;
SELECT setval('items_id_seq', %(items)s);
INSERT INTO photos SELECT i,
    (SELECT decode(string_agg(md5(random()::text || i || j), ''), 'hex')
     FROM generate_series(1, %(photo_bytes)s / 16) j)
    FROM generate_series(1, %(photos)s) i;
INSERT INTO bids (item, bidder, amount, placed)
    SELECT 1 + (random() * (%(items)s - 1))::int, 1 + (random() * (%(users)s - 1))::int,
           round((1 + random() * 300)::numeric, 2), now() - random() * interval '3 days'
    FROM generate_series(1, %(bids)s);
UPDATE items SET max_bid = GREATEST(items.max_bid, b.m), nb_bids = b.n
    FROM (SELECT item, max(amount) AS m, count(*) AS n FROM bids GROUP BY item) b
    WHERE b.item = items.id;
ANALYZE;
"""

PAGE = "<!DOCTYPE html><html><head><title>{title}</title></head><body><h1>{title}</h1>{body}</body></html>"


class Pool:
    """A fixed set of connections opened at start; a request waits for a free one."""

    def __init__(self, size, **dsn):
        self.free = [psycopg2.connect(**dsn) for _ in range(size)]
        self.lock = threading.Lock()
        self.available = threading.Semaphore(size)

    def take(self):
        self.available.acquire()
        with self.lock:
            return self.free.pop()

    def give(self, conn):
        with self.lock:
            self.free.append(conn)
        self.available.release()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive with nginx's upstream pool
    # Headers and body leave in two writes: with Nagle's algorithm the body would wait for
    # nginx's delayed ACK of the headers (40 ms).
    disable_nagle_algorithm = True
    pool = None

    def log_message(self, *args):  # no access log: it would cost more than the request
        pass

    def reply(self, status, body, content_type="text/html; charset=utf-8"):
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def query(self, sql, args=(), write=False):
        conn = self.pool.take()
        try:
            with conn.cursor() as cur:
                if isinstance(sql, list):
                    result = None
                    for s, a in sql:
                        cur.execute(s, a)
                        result = cur.fetchall() if cur.description else result
                else:
                    cur.execute(sql, args)
                    result = cur.fetchall() if cur.description else None
            conn.commit()
            return result
        except Exception:
            conn.rollback()
            raise
        finally:
            self.pool.give(conn)

    def params(self):
        url = urllib.parse.urlsplit(self.path)
        return url.path, {k: v[0] for k, v in urllib.parse.parse_qs(url.query).items()}

    def body(self):
        n = int(self.headers.get("Content-Length", 0))
        return self.rfile.read(n) if n else b""

    def do_GET(self):
        path, q = self.params()
        try:
            if path == "/browse":
                self.browse(int(q.get("category", 1)), int(q.get("page", 0)))
            elif path == "/item":
                self.item(int(q["id"]))
            elif path == "/photo":
                self.photo(int(q["id"]))
            elif path == "/health":
                self.query("SELECT 1")
                self.reply(200, "ok", "text/plain")
            else:
                self.reply(404, PAGE.format(title="Not found", body=""))
        except (KeyError, ValueError) as e:
            self.reply(400, PAGE.format(title="Bad request", body=html.escape(str(e))))

    def do_POST(self):
        path, q = self.params()
        body = self.body()
        try:
            if path == "/bid":
                form = {k: v[0] for k, v in urllib.parse.parse_qs(body.decode()).items()}
                self.bid(int(form["item"]), int(form["user"]), float(form["amount"]))
            elif path == "/sell":
                self.sell(int(q["user"]), int(q["category"]), q.get("title", "item"), body)
            else:
                self.reply(404, PAGE.format(title="Not found", body=""))
        except (KeyError, ValueError) as e:
            self.reply(400, PAGE.format(title="Bad request", body=html.escape(str(e))))

    def browse(self, category, page):
        rows = self.query(
            "SELECT i.id, i.title, i.max_bid, i.nb_bids, i.end_date, u.nickname, u.rating "
            "FROM items i JOIN users u ON u.id = i.seller "
            "WHERE i.category = %s AND i.end_date > now() ORDER BY i.end_date LIMIT 25 OFFSET %s",
            (category, page * 25))
        trs = "".join(
            f"<tr><td><a href=\"/item?id={r[0]}\">{html.escape(r[1])}</a></td><td>{r[2]}</td>"
            f"<td>{r[3]}</td><td>{r[4]:%Y-%m-%d %H:%M}</td><td>{html.escape(r[5])} ({r[6]})</td></tr>"
            for r in rows)
        self.reply(200, PAGE.format(
            title=f"Category {category}, page {page + 1}",
            body=f"<table><tr><th>item</th><th>price</th><th>bids</th><th>ends</th>"
                 f"<th>seller</th></tr>{trs}</table>"))

    def item(self, item_id):
        rows = self.query(
            "SELECT i.title, i.description, i.initial_price, i.max_bid, i.nb_bids, i.end_date, "
            "u.nickname, u.rating, c.name FROM items i JOIN users u ON u.id = i.seller "
            "JOIN categories c ON c.id = i.category WHERE i.id = %s", (item_id,))
        if not rows:
            self.reply(404, PAGE.format(title="No such item", body=""))
            return
        bids = self.query(
            "SELECT b.amount, b.placed, u.nickname FROM bids b JOIN users u ON u.id = b.bidder "
            "WHERE b.item = %s ORDER BY b.placed DESC LIMIT 20", (item_id,))
        t, desc, initial, best, n, end, seller, rating, cat = rows[0]
        history = "".join(f"<li>{b[0]} by {html.escape(b[2])} at {b[1]:%Y-%m-%d %H:%M}</li>"
                          for b in bids)
        self.reply(200, PAGE.format(
            title=html.escape(t),
            body=f"<p>{html.escape(cat)}; sold by {html.escape(seller)} ({rating})</p>"
                 f"<img src=\"/photo?id={item_id}\"><p>{html.escape(desc)}</p>"
                 f"<p>started at {initial}; highest bid {best} ({n} bids); ends {end:%Y-%m-%d %H:%M}</p>"
                 f"<form method=post action=/bid><input name=amount></form><ol>{history}</ol>"))

    def photo(self, item_id):
        rows = self.query("SELECT data FROM photos WHERE item = %s", (item_id,))
        if not rows:
            self.reply(404, PAGE.format(title="No photo", body=""))
            return
        self.reply(200, bytes(rows[0][0]), "image/jpeg")

    def bid(self, item_id, user, amount):
        result = self.query([
            ("SELECT max_bid FROM items WHERE id = %s FOR UPDATE", (item_id,)),
            ("WITH ok AS (SELECT 1 FROM items WHERE id = %s AND max_bid < %s), "
             "b AS (INSERT INTO bids (item, bidder, amount, placed) "
             "SELECT %s, %s, %s, now() FROM ok RETURNING id) "
             "UPDATE items SET max_bid = %s, nb_bids = nb_bids + 1 "
             "WHERE id = %s AND EXISTS (SELECT 1 FROM b) RETURNING nb_bids",
             (item_id, amount, item_id, user, amount, amount, item_id)),
        ], write=True)
        accepted = bool(result)
        self.reply(200, PAGE.format(
            title="Bid " + ("accepted" if accepted else "too low"),
            body=f"<p>item {item_id}: {amount:.2f}</p>"))

    def sell(self, user, category, title, photo):
        rows = self.query([
            ("INSERT INTO items (seller, category, title, description, initial_price, max_bid, "
             "end_date) VALUES (%s, %s, %s, %s, 1, 1, now() + interval '7 days') RETURNING id",
             (user, category, title, "listed with a photo")),
            ("INSERT INTO photos (item, data) VALUES (currval('items_id_seq'), %s) RETURNING item",
             (psycopg2.Binary(photo),)),
        ], write=True)
        self.reply(200, PAGE.format(title="Item listed", body=f"<p>item {rows[0][0]}</p>"))


def serve(a):
    host, port = a.listen.rsplit(":", 1)
    Handler.pool = Pool(a.pool, host=a.db_host, port=a.db_port, dbname=DB_NAME, user=DB_USER)
    server = ThreadingHTTPServer((host, int(port)), Handler)
    server.daemon_threads = True
    server.request_queue_size = 256
    print(f"listening on {a.listen}", flush=True)
    server.serve_forever()


def populate(a):
    conn = psycopg2.connect(host=a.db_host, port=a.db_port, dbname=a.dbname, user=DB_USER)
    with conn, conn.cursor() as cur:
        cur.execute(SCHEMA)
        cur.execute(POPULATE, {"users": a.users, "categories": a.categories, "items": a.items,
                               "photos": a.photos, "photo_bytes": a.photo_bytes, "bids": a.bids})
    conn.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve")
    s.add_argument("--listen", default="127.0.0.1:8000")
    s.add_argument("--db-host", required=True)
    s.add_argument("--db-port", type=int, default=5432)
    s.add_argument("--pool", type=int, default=32)
    p = sub.add_parser("populate")
    p.add_argument("--db-host", required=True)
    p.add_argument("--db-port", type=int, default=5432)
    p.add_argument("--dbname", default=DB_NAME)
    p.add_argument("--users", type=int, default=5000)
    p.add_argument("--categories", type=int, default=20)
    p.add_argument("--items", type=int, default=10000)
    p.add_argument("--photos", type=int, default=400)
    p.add_argument("--photo-bytes", type=int, default=48 * 1024)
    p.add_argument("--bids", type=int, default=50000)
    a = ap.parse_args()
    if a.cmd == "serve":
        serve(a)
    else:
        populate(a)
    return 0


if __name__ == "__main__":
    sys.exit(main())
