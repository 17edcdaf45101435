/* The store thread: opens the database, applies the workers' batches in
 * the order they were handed over, one transaction per group (group
 * commit), and tells each worker how far its batches are durable. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store_int.h"

#define SCHEMA_VERSION 1
#define RETRY_MS 1000u
#define OFF_INTERVAL_MS 100u /* persistence_sync off: commit this often */
#define GC_INTERVAL_MS 10000u
#define ALIVE_MS 2000u /* idle: how often last_alive is written */

static const char *const schema_v1 =
	"CREATE TABLE meta(key TEXT PRIMARY KEY, value INTEGER);"
	"CREATE TABLE sessions(sid INTEGER PRIMARY KEY, client_id BLOB NOT "
	"NULL, owner TEXT, expiry_s INTEGER NOT NULL, offline_since INTEGER "
	"NOT NULL, will BLOB, will_delay INTEGER NOT NULL DEFAULT 0, will_at "
	"INTEGER NOT NULL DEFAULT 0);"
	"CREATE TABLE subs(sid INTEGER NOT NULL, share BLOB NOT NULL, filter "
	"BLOB NOT NULL, qos INTEGER NOT NULL, options INTEGER NOT NULL, "
	"sub_id INTEGER NOT NULL, PRIMARY KEY(sid, share, filter));"
	"CREATE TABLE msgs(id INTEGER PRIMARY KEY, data BLOB NOT NULL);"
	"CREATE TABLE deliveries(did INTEGER PRIMARY KEY, sid INTEGER NOT "
	"NULL, msg_id INTEGER NOT NULL, qos INTEGER NOT NULL, retain INTEGER "
	"NOT NULL, packet_id INTEGER NOT NULL DEFAULT 0, state INTEGER NOT "
	"NULL DEFAULT 0, share BLOB, filter BLOB);"
	"CREATE INDEX deliveries_sid ON deliveries(sid);"
	"CREATE INDEX deliveries_msg ON deliveries(msg_id);"
	"CREATE TABLE qos2_in(sid INTEGER NOT NULL, packet_id INTEGER NOT "
	"NULL, PRIMARY KEY(sid, packet_id));"
	/* data NULL: deleted (kept until the next start so that an older
	 * change recorded later by another worker cannot bring it back) */
	"CREATE TABLE retained(topic BLOB PRIMARY KEY, seq INTEGER NOT NULL, "
	"data BLOB);";

/* Migrations from version i to i + 1 (index i - 1); none yet.  A new
 * schema version appends its step here and bumps SCHEMA_VERSION. */
static const char *const migrations[] = {NULL};

static const char *const sql[ST_COUNT] = {
	[ST_SESSION] = "INSERT OR REPLACE INTO sessions(sid, client_id, owner, "
		       "expiry_s, offline_since, will, will_delay, will_at) "
		       "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
	[ST_SESSION_DEL] = "DELETE FROM sessions WHERE sid = ?1",
	[ST_SESSION_DEL_SUBS] = "DELETE FROM subs WHERE sid = ?1",
	[ST_SESSION_DEL_DELIV] = "DELETE FROM deliveries WHERE sid = ?1",
	[ST_SESSION_DEL_QOS2] = "DELETE FROM qos2_in WHERE sid = ?1",
	[ST_SUB] = "INSERT OR REPLACE INTO subs(sid, share, filter, qos, "
		   "options, sub_id) VALUES(?1, ?2, ?3, ?4, ?5, ?6)",
	[ST_UNSUB] = "DELETE FROM subs WHERE sid = ?1 AND share = ?2 AND "
		     "filter = ?3",
	[ST_MSG] = "INSERT OR IGNORE INTO msgs(id, data) VALUES(?1, ?2)",
	[ST_DELIVERY] = "INSERT OR REPLACE INTO deliveries(did, sid, msg_id, "
			"qos, retain) VALUES(?1, ?2, ?3, ?4, ?5)",
	[ST_DELIVERY_STATE] = "UPDATE deliveries SET packet_id = ?2, state = "
			      "?3, retain = ?4 WHERE did = ?1",
	[ST_DELIVERY_SHARE] = "UPDATE deliveries SET share = ?2, filter = ?3 "
			      "WHERE did = ?1",
	[ST_DELIVERY_DEL] = "DELETE FROM deliveries WHERE did = ?1",
	[ST_MSG_GC] = "DELETE FROM msgs WHERE id = ?1 AND NOT EXISTS (SELECT "
		      "1 FROM deliveries WHERE msg_id = ?1)",
	[ST_RETAIN] = "INSERT INTO retained(topic, seq, data) VALUES(?1, ?2, "
		      "?3) ON CONFLICT(topic) DO UPDATE SET seq = excluded.seq, "
		      "data = excluded.data WHERE excluded.seq > retained.seq",
	[ST_RETAIN_DEL] = "INSERT INTO retained(topic, seq, data) VALUES(?1, "
			  "?2, NULL) ON CONFLICT(topic) DO UPDATE SET seq = "
			  "excluded.seq, data = NULL WHERE excluded.seq > "
			  "retained.seq",
	[ST_QOS2_SET] = "INSERT OR IGNORE INTO qos2_in(sid, packet_id) "
			"VALUES(?1, ?2)",
	[ST_QOS2_CLR] = "DELETE FROM qos2_in WHERE sid = ?1 AND packet_id = ?2",
	[ST_ALIVE] = "INSERT OR REPLACE INTO meta(key, value) "
		     "VALUES('last_alive', ?1)",
};

/* ---- batches ------------------------------------------------------------- */

void moat__store_op_release(struct store_op *op)
{
	moat_msg_unref(&op->msg);
	MOAT_FREE(op->s1);
	MOAT_FREE(op->s2);
	MOAT_FREE(op->blob);
}

void moat__store_batch_free(struct moat_store_batch *sb)
{
	if (!sb)
		return;
	for (size_t i = 0; i < sb->n; i++)
		moat__store_op_release(&sb->v[i]);
	moat_free(sb->v);
	moat_free(sb);
}

/* ---- opening --------------------------------------------------------------- */

static int db_error(struct moat_store *st, int rc, const char *what, char *err,
		    size_t errsz)
{
	const char *msg = st->db ? sqlite3_errmsg(st->db) : sqlite3_errstr(rc);
	snprintf(err, errsz, "persistence: %s: %s: %s%s", st->path, what, msg,
		 rc == SQLITE_NOTADB || rc == SQLITE_CORRUPT
			 ? " (the database is damaged: move it away to start "
			   "with an empty one, or restore a backup)"
			 : rc == SQLITE_BUSY || rc == SQLITE_LOCKED
				   ? " (is another moatd using it?)"
				   : "");
	return MOAT_EIO;
}

/* The directory (created 0700 when missing) and the database file,
 * created 0600; an existing file open to other users is refused. */
static int prepare_files(struct moat_store *st, const char *dir, char *err,
			 size_t errsz)
{
	struct stat sb;
	if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
		snprintf(err, errsz, "persistence: cannot create %s: %s", dir,
			 strerror(errno));
		return MOAT_EIO;
	}
	if (lstat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
		snprintf(err, errsz, "persistence: %s is not a directory%s", dir,
			 S_ISLNK(sb.st_mode) ? " (a symbolic link)" : "");
		return MOAT_EINVAL;
	}
	if (sb.st_mode & S_IWOTH) {
		snprintf(err, errsz, "persistence: %s is writable by every "
			 "user; chmod o-w it", dir);
		return MOAT_EINVAL;
	}
	int n = snprintf(st->path, sizeof(st->path), "%s/moat.db", dir);
	if (n < 0 || (size_t)n >= sizeof(st->path)) {
		snprintf(err, errsz, "persistence: %s: path too long", dir);
		return MOAT_EINVAL;
	}
	int fd = open(st->path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC,
		      0600);
	if (fd < 0) {
		snprintf(err, errsz, "persistence: cannot open %s: %s%s",
			 st->path, strerror(errno),
			 errno == ELOOP ? " (a symbolic link)" : "");
		return MOAT_EIO;
	}
	int rc = fstat(fd, &sb);
	close(fd);
	if (rc != 0 || !S_ISREG(sb.st_mode)) {
		snprintf(err, errsz, "persistence: %s is not a regular file",
			 st->path);
		return MOAT_EINVAL;
	}
	if (sb.st_mode & 077) {
		snprintf(err, errsz, "persistence: %s is open to other users "
			 "(mode %03o); it holds messages: chmod 600 it",
			 st->path, (unsigned)(sb.st_mode & 0777));
		return MOAT_EINVAL;
	}
	return MOAT_OK;
}

static int exec(struct moat_store *st, const char *q, const char *what,
		char *err, size_t errsz)
{
	int rc = sqlite3_exec(st->db, q, NULL, NULL, NULL);
	return rc == SQLITE_OK ? MOAT_OK : db_error(st, rc, what, err, errsz);
}

static int pragma_text(struct moat_store *st, const char *q, char *out,
		       size_t outsz, char *err, size_t errsz)
{
	sqlite3_stmt *s;
	int rc = sqlite3_prepare_v2(st->db, q, -1, &s, NULL);
	if (rc != SQLITE_OK)
		return db_error(st, rc, q, err, errsz);
	rc = sqlite3_step(s);
	out[0] = '\0';
	if (rc == SQLITE_ROW && sqlite3_column_text(s, 0))
		snprintf(out, outsz, "%s", sqlite3_column_text(s, 0));
	int frc = sqlite3_finalize(s);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return db_error(st, rc, q, err, errsz);
	if (frc != SQLITE_OK)
		return db_error(st, frc, q, err, errsz);
	return MOAT_OK;
}

static int check_and_migrate(struct moat_store *st, char *err, size_t errsz)
{
	char v[512];
	int rc;
	/* Damage is found at start, not in the middle of a commit. */
	if ((rc = pragma_text(st, "PRAGMA quick_check", v, sizeof(v), err,
			      errsz)))
		return rc;
	if (strcmp(v, "ok") != 0) {
		snprintf(err, errsz, "persistence: %s: the database is damaged "
			 "(%s): move it away to start with an empty one, or "
			 "restore a backup", st->path, v);
		return MOAT_EIO;
	}
	if ((rc = pragma_text(st, "PRAGMA user_version", v, sizeof(v), err,
			      errsz)))
		return rc;
	long ver = strtol(v, NULL, 10);
	if (ver > SCHEMA_VERSION) {
		snprintf(err, errsz, "persistence: %s: schema version %ld is "
			 "newer than this moatd knows (%d); use a newer moatd",
			 st->path, ver, SCHEMA_VERSION);
		return MOAT_EINVAL;
	}
	if (ver == SCHEMA_VERSION)
		return MOAT_OK;
	if ((rc = exec(st, "BEGIN IMMEDIATE", "begin", err, errsz)))
		return rc;
	if (ver == 0) {
		rc = exec(st, schema_v1, "creating the schema", err, errsz);
		ver = 1;
	}
	for (; !rc && ver < SCHEMA_VERSION; ver++)
		rc = exec(st, migrations[ver - 1], "migrating", err, errsz);
	char q[64];
	snprintf(q, sizeof(q), "PRAGMA user_version = %d", SCHEMA_VERSION);
	if (!rc)
		rc = exec(st, q, "setting the schema version", err, errsz);
	if (!rc)
		return exec(st, "COMMIT", "commit", err, errsz);
	sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
	return rc;
}

static int open_db(struct moat_store *st, char *err, size_t errsz)
{
	int rc = sqlite3_open_v2(st->path, &st->db,
				 SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX |
					 SQLITE_OPEN_NOFOLLOW,
				 NULL);
	if (rc != SQLITE_OK)
		return db_error(st, rc, "open", err, errsz);
	sqlite3_extended_result_codes(st->db, 0);
	char mode[32];
	/* One moatd per database: the lock is held while it runs. */
	if ((rc = exec(st, "PRAGMA locking_mode = EXCLUSIVE", "locking", err,
		       errsz)) ||
	    (rc = pragma_text(st, "PRAGMA journal_mode = WAL", mode,
			      sizeof(mode), err, errsz)))
		return rc;
	if (strcmp(mode, "wal") != 0) {
		snprintf(err, errsz, "persistence: %s: cannot use WAL mode "
			 "(journal mode is %s)", st->path, mode);
		return MOAT_EIO;
	}
	const char *sync = st->sync == MOAT_PSYNC_FULL     ? "FULL"
			   : st->sync == MOAT_PSYNC_NORMAL ? "NORMAL"
							   : "OFF";
	char q[64];
	snprintf(q, sizeof(q), "PRAGMA synchronous = %s", sync);
	if ((rc = exec(st, q, "synchronous", err, errsz)) ||
	    (rc = check_and_migrate(st, err, errsz)))
		return rc;
	for (int i = 0; i < ST_COUNT; i++) {
		rc = sqlite3_prepare_v3(st->db, sql[i], -1,
					SQLITE_PREPARE_PERSISTENT, &st->st[i],
					NULL);
		if (rc != SQLITE_OK)
			return db_error(st, rc, "preparing statements", err,
					errsz);
	}
	return MOAT_OK;
}

static void store_free(struct moat_store *st)
{
	if (!st)
		return;
	for (int i = 0; i < ST_COUNT; i++)
		sqlite3_finalize(st->st[i]);
	if (st->db)
		sqlite3_close(st->db);
	while (st->head) {
		struct moat_store_batch *sb = st->head;
		st->head = sb->next;
		moat__store_batch_free(sb);
	}
	pthread_mutex_destroy(&st->lock);
	pthread_cond_destroy(&st->cond);
	moat_free(st->committed);
	moat_free(st->buf);
	moat_free(st);
}

int moat_store_open(struct moat_broker *b, char *err, size_t errsz)
{
	const struct moat_config *cfg = &b->cfg;
	if (!cfg->persistence)
		return MOAT_OK;
	struct moat_store *st = moat_calloc(1, sizeof(*st));
	if (!st) {
		snprintf(err, errsz, "persistence: out of memory");
		return MOAT_ENOMEM;
	}
	st->b = b;
	st->sync = cfg->persistence_sync;
	pthread_mutex_init(&st->lock, NULL);
	pthread_cond_init(&st->cond, NULL);
	st->committed = moat_calloc(b->nworkers, sizeof(*st->committed));
	int rc = st->committed ? MOAT_OK : MOAT_ENOMEM;
	if (rc)
		snprintf(err, errsz, "persistence: out of memory");
	if (!rc)
		rc = prepare_files(st, cfg->persistence_location, err, errsz);
	if (!rc)
		rc = open_db(st, err, errsz);
	if (!rc)
		rc = moat__store_load(st, err, errsz);
	if (rc) {
		store_free(st);
		return rc;
	}
	b->store = st;
	return MOAT_OK;
}

/* ---- applying records ------------------------------------------------------- */

static int bind_text(sqlite3_stmt *s, int i, const char *p, size_t n)
{
	return sqlite3_bind_blob64(s, i, p ? p : "", p ? n : 0,
				   SQLITE_STATIC);
}

static int step(sqlite3_stmt *s)
{
	int rc = sqlite3_step(s);
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	return rc == SQLITE_DONE || rc == SQLITE_ROW ? SQLITE_OK : rc;
}

static int put_blob(struct moat_store *st, sqlite3_stmt *s, int i,
		    const struct moat_msg *m)
{
	size_t n = moat__msg_blob_size(m);
	if (n > st->bufcap) {
		uint8_t *p = moat_realloc(st->buf, n);
		if (!p)
			return SQLITE_NOMEM;
		st->buf = p;
		st->bufcap = n;
	}
	moat__msg_blob(m, st->buf, moat_now_ms(), moat__wall_ms());
	return sqlite3_bind_blob64(s, i, st->buf, n, SQLITE_STATIC);
}

static int apply_session(struct moat_store *st, const struct store_op *op)
{
	sqlite3_stmt *s = st->st[ST_SESSION];
	sqlite3_bind_int64(s, 1, (sqlite3_int64)op->sid);
	bind_text(s, 2, op->s1, op->l1);
	if (op->s2)
		sqlite3_bind_text(s, 3, op->s2, (int)op->l2, SQLITE_STATIC);
	sqlite3_bind_int64(s, 4, op->u32);
	sqlite3_bind_int64(s, 5, (sqlite3_int64)op->t);
	if (op->blob)
		sqlite3_bind_blob64(s, 6, op->blob, op->blob_len,
				    SQLITE_STATIC);
	sqlite3_bind_int64(s, 7, op->u32b);
	sqlite3_bind_int64(s, 8, (sqlite3_int64)op->t2);
	return step(s);
}

static int apply_session_del(struct moat_store *st, const struct store_op *op)
{
	static const enum store_stmt del[] = {
		ST_SESSION_DEL, ST_SESSION_DEL_SUBS, ST_SESSION_DEL_DELIV,
		ST_SESSION_DEL_QOS2};
	for (size_t i = 0; i < MOAT_ARRAY_LEN(del); i++) {
		sqlite3_bind_int64(st->st[del[i]], 1, (sqlite3_int64)op->sid);
		int rc = step(st->st[del[i]]);
		if (rc)
			return rc;
	}
	st->gc_due = true;
	return SQLITE_OK;
}

static int apply_sub(struct moat_store *st, const struct store_op *op,
		     bool add)
{
	sqlite3_stmt *s = st->st[add ? ST_SUB : ST_UNSUB];
	sqlite3_bind_int64(s, 1, (sqlite3_int64)op->sid);
	bind_text(s, 2, op->s2, op->l2);
	bind_text(s, 3, op->s1, op->l1);
	if (add) {
		sqlite3_bind_int(s, 4, op->qos);
		sqlite3_bind_int(s, 5, op->flags);
		sqlite3_bind_int64(s, 6, op->u32);
	}
	return step(s);
}

static int apply_delivery(struct moat_store *st, const struct store_op *op,
			  uint64_t *last_msg)
{
	int rc;
	/* A message fanned out to several stored sessions is written once:
	 * its records follow each other in the batch. */
	if (op->msg->store_id != *last_msg) {
		sqlite3_stmt *s = st->st[ST_MSG];
		sqlite3_bind_int64(s, 1, (sqlite3_int64)op->msg->store_id);
		if ((rc = put_blob(st, s, 2, op->msg)) || (rc = step(s)))
			return rc;
		*last_msg = op->msg->store_id;
	}
	sqlite3_stmt *s = st->st[ST_DELIVERY];
	sqlite3_bind_int64(s, 1, (sqlite3_int64)op->id);
	sqlite3_bind_int64(s, 2, (sqlite3_int64)op->sid);
	sqlite3_bind_int64(s, 3, (sqlite3_int64)op->msg->store_id);
	sqlite3_bind_int(s, 4, op->qos);
	sqlite3_bind_int(s, 5, op->flags & 1);
	return step(s);
}

static int apply_delivery_del(struct moat_store *st, const struct store_op *op,
			      uint64_t *last_msg)
{
	sqlite3_stmt *s = st->st[ST_DELIVERY_DEL];
	sqlite3_bind_int64(s, 1, (sqlite3_int64)op->id);
	int rc = step(s);
	if (rc || !op->sid)
		return rc;
	*last_msg = 0; /* it may be gone now: the next delivery writes it */
	s = st->st[ST_MSG_GC];
	sqlite3_bind_int64(s, 1, (sqlite3_int64)op->sid);
	return step(s);
}

static int apply_retain(struct moat_store *st, const struct store_op *op)
{
	const struct moat_msg *m = op->msg;
	sqlite3_stmt *s = st->st[m->payload_len ? ST_RETAIN : ST_RETAIN_DEL];
	bind_text(s, 1, m->topic, m->topic_len);
	sqlite3_bind_int64(s, 2, (sqlite3_int64)op->id);
	int rc;
	if (m->payload_len && (rc = put_blob(st, s, 3, m)))
		return rc;
	return step(s);
}

static int apply_op(struct moat_store *st, const struct store_op *op,
		    uint64_t *last_msg)
{
	sqlite3_stmt *s;
	switch ((enum store_op_kind)op->kind) {
	case SOP_SESSION:
		return apply_session(st, op);
	case SOP_SESSION_DEL:
		return apply_session_del(st, op);
	case SOP_SUB:
		return apply_sub(st, op, true);
	case SOP_UNSUB:
		return apply_sub(st, op, false);
	case SOP_DELIVERY:
		return apply_delivery(st, op, last_msg);
	case SOP_DELIVERY_STATE:
		s = st->st[ST_DELIVERY_STATE];
		sqlite3_bind_int64(s, 1, (sqlite3_int64)op->id);
		sqlite3_bind_int(s, 2, op->packet_id);
		sqlite3_bind_int(s, 3, op->qos);
		sqlite3_bind_int(s, 4, op->flags & 1);
		return step(s);
	case SOP_DELIVERY_SHARE:
		s = st->st[ST_DELIVERY_SHARE];
		sqlite3_bind_int64(s, 1, (sqlite3_int64)op->id);
		bind_text(s, 2, op->s2, op->l2);
		bind_text(s, 3, op->s1, op->l1);
		return step(s);
	case SOP_DELIVERY_DEL:
		return apply_delivery_del(st, op, last_msg);
	case SOP_RETAIN:
		return apply_retain(st, op);
	case SOP_QOS2_SET:
	case SOP_QOS2_CLR:
		s = st->st[op->kind == SOP_QOS2_SET ? ST_QOS2_SET
						     : ST_QOS2_CLR];
		sqlite3_bind_int64(s, 1, (sqlite3_int64)op->sid);
		sqlite3_bind_int(s, 2, op->packet_id);
		return step(s);
	}
	return SQLITE_MISUSE;
}

/* One transaction for every batch in the list.  SQLITE_OK or the error;
 * on error nothing of it stays in the database. */
static int commit_batches(struct moat_store *st, struct moat_store_batch *list)
{
	int rc = sqlite3_exec(st->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
	uint64_t last_msg = 0;
	for (struct moat_store_batch *sb = list; sb && !rc; sb = sb->next)
		for (size_t i = 0; i < sb->n && !rc; i++)
			rc = apply_op(st, &sb->v[i], &last_msg);
	if (!rc) {
		sqlite3_stmt *s = st->st[ST_ALIVE];
		sqlite3_bind_int64(s, 1, (sqlite3_int64)moat__wall_ms());
		rc = step(s);
	}
	uint64_t now = moat_now_ms();
	if (!rc && st->gc_due && now - st->gc_at_ms >= GC_INTERVAL_MS) {
		rc = sqlite3_exec(st->db,
				  "DELETE FROM msgs WHERE NOT EXISTS (SELECT 1 "
				  "FROM deliveries WHERE msg_id = msgs.id)",
				  NULL, NULL, NULL);
		st->gc_due = false;
		st->gc_at_ms = now;
	}
	if (!rc)
		rc = sqlite3_exec(st->db, "COMMIT", NULL, NULL, NULL);
	if (rc) {
		int keep = rc;
		if (!sqlite3_get_autocommit(st->db))
			sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
		return keep;
	}
	return SQLITE_OK;
}

static void wake_worker(struct moat_worker *w)
{
	uint64_t one = 1;
	(void)!write(w->evfd, &one, sizeof(one));
}

/* Tell each worker how far its batches are durable, free them, and wake
 * the workers whose output may be waiting for them. */
static void committed(struct moat_store *st, struct moat_store_batch *list)
{
	struct moat_broker *b = st->b;
	uint64_t seen[4] = {0};
	while (list) {
		struct moat_store_batch *sb = list;
		list = sb->next;
		atomic_store_explicit(&st->committed[sb->worker], sb->seq,
				      memory_order_release);
		st->records += sb->n;
		atomic_fetch_sub_explicit(&st->backlog, sb->n,
					  memory_order_relaxed);
		if (sb->worker < 256)
			seen[sb->worker / 64] |= 1ull << (sb->worker % 64);
		moat__store_batch_free(sb);
	}
	st->commits++;
	/* (With persistence_sync off too: a gate set while the store was
	 * far behind waits for this.) */
	for (unsigned i = 0; i < b->nworkers && i < 256; i++)
		if (seen[i / 64] & (1ull << (i % 64)))
			wake_worker(&b->workers[i]);
}

/* Wait (lock held) until ms have passed, or until stopping: hand-overs
 * signal the condition too, and must not cut a retry pause short. */
static struct timespec deadline_in(uint64_t ms)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += (time_t)(ms / 1000u);
	ts.tv_nsec += (long)(ms % 1000u) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	return ts;
}

static void sleep_ms(struct moat_store *st, uint64_t ms)
{
	struct timespec ts = deadline_in(ms);
	while (!st->stopping &&
	       pthread_cond_timedwait(&st->cond, &st->lock, &ts) != ETIMEDOUT)
		;
}

/* Wait (lock held) for work, at most ms; false when none came. */
static bool wait_work(struct moat_store *st, uint64_t ms)
{
	struct timespec ts = deadline_in(ms);
	while (!st->head && !st->stopping)
		if (pthread_cond_timedwait(&st->cond, &st->lock, &ts) ==
		    ETIMEDOUT)
			return st->head != NULL;
	return true;
}

static void *store_main(void *arg)
{
	struct moat_store *st = arg;
	struct moat_store_batch *retry = NULL, *retry_tail = NULL;
	pthread_mutex_lock(&st->lock);
	for (;;) {
		/* Idle: a commit every ALIVE_MS anyway, so that a session
		 * connected when moatd dies counts as offline from about
		 * then, not from its last message (session expiry). */
		bool work = retry || wait_work(st, ALIVE_MS);
		if (work && st->sync == MOAT_PSYNC_OFF && !st->stopping &&
		    !retry)
			sleep_ms(st, OFF_INTERVAL_MS); /* gather more */
		struct moat_store_batch *list = st->head;
		struct moat_store_batch *tail = st->tail;
		st->head = st->tail = NULL;
		st->queued = 0;
		bool stopping = st->stopping;
		pthread_mutex_unlock(&st->lock);
		if (retry) { /* the failed ones first, in order */
			retry_tail->next = list;
			if (!list)
				tail = retry_tail;
			list = retry;
			retry = retry_tail = NULL;
		}
		uint64_t t0 = moat_now_ns();
		int rc = commit_batches(st, list);
		moat_histo_observe(&st->commit_hist, moat_now_ns() - t0);
		if (rc == SQLITE_OK) {
			if (atomic_exchange(&st->failing, false))
				moat_notice("persistence: %s: writing again",
					    st->path);
			committed(st, list);
		} else {
			if (!atomic_exchange(&st->failing, true))
				moat_err_log("persistence: %s: commit failed: "
					     "%s; acknowledgements wait, new "
					     "QoS 1/2 messages and persistent "
					     "sessions are refused; retrying "
					     "every second",
					     st->path, sqlite3_errstr(rc));
			retry = list;
			retry_tail = tail;
		}
		pthread_mutex_lock(&st->lock);
		if (retry && stopping) {
			/* Shutting down while the disk refuses: say what is
			 * lost rather than hang. */
			size_t n = 0;
			for (struct moat_store_batch *sb = retry; sb;
			     sb = sb->next)
				n += sb->n;
			moat_err_log("persistence: %s: %zu records could not "
				     "be written before shutdown",
				     st->path, n);
			while (retry) {
				struct moat_store_batch *sb = retry;
				retry = sb->next;
				moat__store_batch_free(sb);
			}
			retry_tail = NULL;
		}
		if (stopping && !st->head)
			break;
		if (retry)
			sleep_ms(st, RETRY_MS);
	}
	pthread_mutex_unlock(&st->lock);
	return NULL;
}

int moat_store_start(struct moat_broker *b)
{
	struct moat_store *st = b->store;
	if (!st)
		return MOAT_OK;
	int e = pthread_create(&st->thread, NULL, store_main, st);
	if (e) {
		moat_err_log("persistence: cannot start the store thread: %s",
			     strerror(e));
		return MOAT_EIO;
	}
	/* Named for ps, top and debuggers (the CoAP tests stop this thread
	 * alone to hold a commit back). */
	(void)pthread_setname_np(st->thread, "moat-store");
	st->running = true;
	return MOAT_OK;
}

void moat_store_close(struct moat_broker *b)
{
	struct moat_store *st = b->store;
	if (!st)
		return;
	for (unsigned i = 0; i < b->nworkers; i++)
		moat__store_flush(&b->workers[i]);
	if (st->running) {
		pthread_mutex_lock(&st->lock);
		st->stopping = true;
		pthread_cond_signal(&st->cond);
		pthread_mutex_unlock(&st->lock);
		pthread_join(st->thread, NULL);
	}
	uint64_t lost = atomic_load(&st->lost);
	if (lost)
		moat_err_log("persistence: %llu records could not be made "
			     "(out of memory) while running",
			     (unsigned long long)lost);
	for (unsigned i = 0; i < b->nworkers; i++) {
		moat__store_batch_free(b->workers[i].sbatch);
		b->workers[i].sbatch = NULL;
	}
	b->store = NULL;
	store_free(st);
}
