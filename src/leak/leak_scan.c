/* The leak detector's public entry points: category names, building the
 * db (compiling the Vectorscan patterns of the chosen categories),
 * per-thread scratch, and the scan itself (the three phases described in
 * leak_int.h), including the resolution of overlapping candidates. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include <openssl/rand.h>

#include "leak/leak_int.h"

void moat__leak_keys_init(void);

/* ---- names ------------------------------------------------------------------ */

static const char *const cat_names[MOAT_LEAK_CATEGORY_COUNT] = {
	"private_ipv4",    "private_ipv6",   "mac_address",
	"email",           "geolocation",    "credential",
	"http_auth",       "jwt",            "private_key",
	"url_credentials", "aws_key",        "vendor_token",
	"generic_secret",  "payment_card",   "iban",
	"national_id",     "device_id",      "health",
	"person",          "internal_hostname", "wifi_credentials",
	"vehicle_id",
};

static const char *const sev_names[] = {"info", "low", "medium", "high",
					"critical"};

const char *moat_leak_category_name(enum moat_leak_category c)
{
	if ((unsigned)c >= MOAT_LEAK_CATEGORY_COUNT)
		return NULL;
	return cat_names[c];
}

int moat_leak_category_parse(const char *name, size_t len,
			     enum moat_leak_category *out)
{
	for (unsigned i = 0; i < MOAT_LEAK_CATEGORY_COUNT; i++) {
		if (strlen(cat_names[i]) == len &&
		    !memcmp(cat_names[i], name, len)) {
			*out = (enum moat_leak_category)i;
			return MOAT_OK;
		}
	}
	return MOAT_ENOTFOUND;
}

int moat_leak_categories_parse(const char *list, uint32_t *set, char *err,
			       size_t errsz)
{
	uint32_t m = 0;
	const char *p = list;
	if (err && errsz)
		err[0] = '\0';
	for (;;) {
		const char *c = strchr(p, ',');
		size_t n = c ? (size_t)(c - p) : strlen(p);
		enum moat_leak_category cat;
		if (n == 0 || moat_leak_category_parse(p, n, &cat) != MOAT_OK) {
			if (err && errsz)
				snprintf(err, errsz, "unknown category '%.*s'",
					 (int)MOAT_MIN(n, (size_t)64), p);
			return MOAT_EINVAL;
		}
		m |= MOAT_LEAK_BIT(cat);
		if (!c)
			break;
		p = c + 1;
	}
	*set = m;
	return MOAT_OK;
}

const char *moat_leak_severity_name(enum moat_leak_severity s)
{
	if ((unsigned)s >= MOAT_ARRAY_LEN(sev_names))
		return NULL;
	return sev_names[s];
}

int moat_leak_severity_parse(const char *name, enum moat_leak_severity *out)
{
	for (unsigned i = 0; i < MOAT_ARRAY_LEN(sev_names); i++) {
		if (!strcmp(sev_names[i], name)) {
			*out = (enum moat_leak_severity)i;
			return MOAT_OK;
		}
	}
	return MOAT_ENOTFOUND;
}

const char *moat_leak_flag_name(uint32_t flag)
{
	static const char *const names[] = {
		"weak_password", "test_value", "context", "json_string",
		"json_scalar", "expired", "alg_none", "precise", "linked",
		"encrypted", "truncated", "decoded"};
	for (unsigned i = 0; i < MOAT_ARRAY_LEN(names); i++)
		if (flag == UINT32_C(1) << i)
			return names[i];
	return NULL;
}

/* ---- db ---------------------------------------------------------------------- */

static atomic_uint_fast64_t next_db_id = 1;
static pthread_once_t lex_once = PTHREAD_ONCE_INIT;

static int compile(struct moat_leak_db *db, char *err, size_t errsz)
{
	const char *pats[LEAK_RULES_MAX];
	unsigned flags[LEAK_RULES_MAX], ids[LEAK_RULES_MAX];
	unsigned n = 0;
	for (unsigned i = 0; i < moat__leak_rule_count; i++) {
		const struct lk_rule *r = &moat__leak_rules[i];
		if (!r->pattern ||
		    !(db->categories & MOAT_LEAK_BIT(r->category)))
			continue;
		pats[n] = r->pattern;
		flags[n] = r->hs_flags;
		ids[n] = i;
		n++;
	}
	if (n == 0)
		return MOAT_OK;
	hs_compile_error_t *ce = NULL;
	if (hs_compile_multi(pats, flags, ids, n, HS_MODE_BLOCK, NULL, &db->hs,
			     &ce) != HS_SUCCESS) {
		snprintf(err, errsz, "leak detector: pattern %d: %s",
			 ce ? ce->expression : -1,
			 ce && ce->message ? ce->message : "compile error");
		hs_free_compile_error(ce);
		return MOAT_EIO;
	}
	return MOAT_OK;
}

int moat_leak_db_new(const struct moat_leak_opts *opts,
		     struct moat_leak_db **out, char *err, size_t errsz)
{
	static const struct moat_leak_opts defaults;
	char dummy[8];
	if (!err || !errsz) {
		err = dummy;
		errsz = sizeof(dummy);
	}
	err[0] = '\0';
	if (!out)
		return MOAT_EINVAL;
	*out = NULL;
	if (!opts)
		opts = &defaults;
	if ((opts->categories & ~MOAT_LEAK_ALL) ||
	    opts->budget > MOAT_LEAK_MAX_BUDGET ||
	    opts->json_depth > MOAT_LEAK_MAX_JSON_DEPTH) {
		snprintf(err, errsz, "leak detector: invalid options");
		return MOAT_EINVAL;
	}
	if (hs_valid_platform() != HS_SUCCESS) {
		snprintf(err, errsz, "leak detector: this CPU is not "
				     "supported by Vectorscan");
		return MOAT_EIO;
	}
	moat__leak_keys_init();
	pthread_once(&lex_once, moat__leak_lex_init);
	struct moat_leak_db *db = moat_calloc(1, sizeof(*db));
	if (!db) {
		snprintf(err, errsz, "leak detector: out of memory");
		return MOAT_ENOMEM;
	}
	db->categories = opts->categories ? opts->categories : MOAT_LEAK_ALL;
	db->budget = opts->budget ? opts->budget : MOAT_LEAK_DEFAULT_BUDGET;
	db->json_depth = opts->json_depth ? opts->json_depth
					  : MOAT_LEAK_DEFAULT_JSON_DEPTH;
	db->id = atomic_fetch_add(&next_db_id, 1);
	uint8_t key[MOAT_LEAK_KEY_LEN];
	if (opts->hmac_key) {
		memcpy(key, opts->hmac_key, sizeof(key));
	} else if (RAND_bytes(key, sizeof(key)) != 1) {
		snprintf(err, errsz, "leak detector: no random key");
		moat_free(db);
		return MOAT_EIO;
	}
	int rc = moat__leak_hmac_setup(db, key);
	memset(key, 0, sizeof(key));
	if (rc == MOAT_OK)
		rc = compile(db, err, errsz);
	if (rc != MOAT_OK) {
		if (!err[0])
			snprintf(err, errsz, "leak detector: setup failed");
		moat_leak_db_free(db);
		return rc;
	}
	*out = db;
	return MOAT_OK;
}

void moat_leak_db_free(struct moat_leak_db *db)
{
	if (!db)
		return;
	hs_free_database(db->hs);
	memset(&db->hmac_inner, 0, sizeof(db->hmac_inner));
	memset(&db->hmac_outer, 0, sizeof(db->hmac_outer));
	moat_free(db);
}

uint32_t moat_leak_db_categories(const struct moat_leak_db *db)
{
	return db->categories;
}

size_t moat_leak_db_budget(const struct moat_leak_db *db)
{
	return db->budget;
}

int moat_leak_scratch_new(const struct moat_leak_db *db,
			  struct moat_leak_scratch **out)
{
	if (!db || !out)
		return MOAT_EINVAL;
	*out = NULL;
	size_t frames = (size_t)db->json_depth + 1;
	struct moat_leak_scratch *s = moat_calloc(
		1, sizeof(*s) + 2 * frames * sizeof(struct lk_frame));
	if (!s)
		return MOAT_ENOMEM;
	s->db = db;
	s->db_id = db->id;
	if (db->hs) {
		hs_error_t e = hs_alloc_scratch(db->hs, &s->hs);
		if (e != HS_SUCCESS) {
			moat_free(s);
			return e == HS_NOMEM ? MOAT_ENOMEM : MOAT_EIO;
		}
	}
	s->sc.stack = s->frames;
	s->sc.max_depth = db->json_depth;
	s->sc.owner = s;
	s->sub.stack = s->frames + frames;
	s->sub.max_depth = db->json_depth;
	s->sub.owner = s;
	s->sub.nested = true;
	s->dec.buf = s->text;
	s->dec.cap = sizeof(s->text);
	*out = s;
	return MOAT_OK;
}

void moat_leak_scratch_free(struct moat_leak_scratch *s)
{
	if (!s)
		return;
	hs_free_scratch(s->hs);
	moat_free(s);
}

/* ---- candidates ---------------------------------------------------------------- */

struct lk_cand *moat__leak_add(struct lk_scan *sc, enum moat_leak_category c,
			       size_t s, size_t e, enum moat_leak_severity sev,
			       unsigned confidence, uint32_t flags)
{
	if (!lk_enabled(sc, c) || e <= s || e > sc->n)
		return NULL;
	sc->total++;
	if (sc->ncand == LEAK_CAND_MAX) {
		sc->stop = true;
		return NULL;
	}
	struct lk_cand *k = &sc->cand[sc->ncand++];
	memset(&k->f, 0, offsetof(struct moat_leak_finding, path));
	k->f.category = c;
	k->f.severity = sev;
	k->f.confidence = (uint8_t)MOAT_MIN(confidence, 100u);
	k->f.flags = flags;
	k->f.start = s;
	k->f.end = e;
	k->f.path[0] = '\0';
	k->f.preview[0] = '\0';
	k->f.hmac[0] = '\0';
	k->rule = 0;
	k->dead = false;
	k->has_path = false;
	return k;
}

bool moat__leak_overlaps(const struct lk_scan *sc, enum moat_leak_category c,
			 size_t s, size_t e)
{
	for (size_t i = 0; i < sc->ncand; i++) {
		const struct lk_cand *k = &sc->cand[i];
		if (!k->dead && k->f.category == c && k->f.start < e &&
		    s < k->f.end)
			return true;
	}
	return false;
}

/* ---- phase 1: Vectorscan ---------------------------------------------------------- */

static int on_match(unsigned id, unsigned long long from,
		    unsigned long long to, unsigned flags, void *ctx)
{
	struct lk_scan *sc = ctx;
	(void)from;
	(void)flags;
	sc->touched++;
	moat__leak_rules[id].fn(sc, id, (size_t)to);
	return sc->stop ? 1 : 0;
}

static void run_patterns(struct moat_leak_scratch *s, struct lk_scan *sc)
{
	memset(sc->tok_end, 0,
	       moat__leak_rule_count * sizeof(sc->tok_end[0]));
	if (s->db->hs && sc->n)
		hs_scan(s->db->hs, (const char *)sc->d, (unsigned)sc->n, 0,
			s->hs, on_match, sc);
	if (!sc->stop)
		moat__leak_lex(sc);
}

/* ---- phase 3: resolution ---------------------------------------------------------- */

/* Whether a finding of category a on the same bytes as one of b (whose
 * flags are bf) is redundant: the more specific category explains it. */
static bool explained_by(enum moat_leak_category a, enum moat_leak_category b,
			 uint32_t bf)
{
	switch (a) {
	case MOAT_LEAK_GENERIC_SECRET:
		return true;
	case MOAT_LEAK_CREDENTIAL:
		return b == MOAT_LEAK_JWT || b == MOAT_LEAK_AWS_KEY ||
		       b == MOAT_LEAK_VENDOR_TOKEN ||
		       b == MOAT_LEAK_PRIVATE_KEY || b == MOAT_LEAK_HTTP_AUTH ||
		       b == MOAT_LEAK_URL_CREDENTIALS ||
		       b == MOAT_LEAK_WIFI_CREDENTIALS;
	case MOAT_LEAK_HTTP_AUTH:
		return b == MOAT_LEAK_JWT;
	case MOAT_LEAK_PERSON:
		return b == MOAT_LEAK_EMAIL;
	case MOAT_LEAK_PRIVATE_IPV4:
		return b == MOAT_LEAK_PRIVATE_IPV6;
	case MOAT_LEAK_PAYMENT_CARD:
		return b == MOAT_LEAK_DEVICE_ID && (bf & MOAT_LEAK_F_CONTEXT);
	case MOAT_LEAK_VEHICLE_ID:
		return b == MOAT_LEAK_AWS_KEY || b == MOAT_LEAK_VENDOR_TOKEN;
	default:
		return false;
	}
}

static bool better(const struct lk_cand *a, const struct lk_cand *b)
{
	if (a->f.confidence != b->f.confidence)
		return a->f.confidence > b->f.confidence;
	if (a->f.end - a->f.start != b->f.end - b->f.start)
		return a->f.end - a->f.start > b->f.end - b->f.start;
	return a < b;
}

static void resolve(struct lk_scan *sc)
{
	for (size_t i = 0; i < sc->ncand; i++) {
		struct lk_cand *a = &sc->cand[i];
		for (size_t j = 0; j < sc->ncand && !a->dead; j++) {
			struct lk_cand *b = &sc->cand[j];
			if (i == j || b->dead || a->f.start >= b->f.end ||
			    b->f.start >= a->f.end)
				continue;
			if (a->f.category == b->f.category) {
				if (!better(a, b))
					a->dead = true;
			} else if (explained_by(a->f.category, b->f.category,
						b->f.flags) &&
				   !(b->f.category == MOAT_LEAK_GENERIC_SECRET)) {
				a->dead = true;
			}
		}
	}
}

/* Health data next to who it is about or where they are. */
static void link_health(struct lk_scan *sc)
{
	bool linked = false, health = false;
	for (size_t i = 0; i < sc->ncand; i++) {
		const struct lk_cand *c = &sc->cand[i];
		if (c->dead)
			continue;
		switch (c->f.category) {
		case MOAT_LEAK_HEALTH:
			health = true;
			break;
		case MOAT_LEAK_PERSON:
		case MOAT_LEAK_EMAIL:
		case MOAT_LEAK_NATIONAL_ID:
		case MOAT_LEAK_CREDENTIAL:
			linked = true;
			break;
		case MOAT_LEAK_GEOLOCATION:
			linked |= (c->f.flags & MOAT_LEAK_F_PRECISE) != 0;
			break;
		default:
			break;
		}
	}
	if (!health || !linked)
		return;
	for (size_t i = 0; i < sc->ncand; i++) {
		struct lk_cand *c = &sc->cand[i];
		if (!c->dead && c->f.category == MOAT_LEAK_HEALTH) {
			c->f.severity = MOAT_LEAK_SEV_CRITICAL;
			c->f.flags |= MOAT_LEAK_F_LINKED;
		}
	}
}

static bool cand_before(const struct lk_cand *a, const struct lk_cand *b)
{
	if (a->f.start != b->f.start)
		return a->f.start < b->f.start;
	return a->f.category < b->f.category;
}

static void sort_cands(struct lk_cand *v, size_t n)
{
	for (size_t i = 1; i < n; i++) {
		if (!cand_before(&v[i], &v[i - 1]))
			continue;
		struct lk_cand t = v[i];
		size_t j = i;
		while (j > 0 && cand_before(&t, &v[j - 1])) {
			v[j] = v[j - 1];
			j--;
		}
		v[j] = t;
	}
}

/* Append the findings of the last scan (of `part`) to out. */
static void finish(struct moat_leak_scratch *s, struct moat_leak_result *out,
		   uint8_t part)
{
	struct lk_scan *sc = &s->sc;
	sort_cands(sc->cand, sc->ncand);
	size_t alive = 0;
	for (size_t i = 0; i < sc->ncand; i++) {
		const struct lk_cand *c = &sc->cand[i];
		if (c->dead)
			continue;
		alive++;
		if (out->n == MOAT_LEAK_MAX_FINDINGS)
			continue;
		struct moat_leak_finding *f = &s->out[out->n++];
		*f = c->f;
		f->part = part;
		moat__leak_hmac(s->db, sc->d, f->start, f->end, f->hmac);
		out->categories |= MOAT_LEAK_BIT(f->category);
		if (f->severity > out->max_severity)
			out->max_severity = f->severity;
	}
	out->findings = s->out;
	out->total += alive + (sc->total - sc->ncand);
	if (out->total > out->n)
		out->flags |= MOAT_LEAK_R_TRUNCATED;
}

/* ---- the clean-topic cache ------------------------------------------------- */

static bool tcache_clean(struct moat_leak_scratch *s, uint32_t h,
			 const uint8_t *t, size_t n)
{
	if (n == 0 || n > LK_TCACHE_TOPIC)
		return false;
	const struct lk_tcache_ent *e = &s->tcache[h & (LK_TCACHE - 1)];
	return e->len == n && !memcmp(e->topic, t, n);
}

static void tcache_add(struct moat_leak_scratch *s, uint32_t h,
		       const uint8_t *t, size_t n)
{
	if (n == 0 || n > LK_TCACHE_TOPIC)
		return;
	struct lk_tcache_ent *e = &s->tcache[h & (LK_TCACHE - 1)];
	e->len = (uint8_t)n;
	memcpy(e->topic, t, n);
}

/* ---- binary payloads ------------------------------------------------------ */

#define LEAK_ISLAND_MIN 16 /* bytes of text around a finding in binary */

static inline bool text_byte(uint8_t c)
{
	return (c >= 0x20 && c < 0x7f) || c == '\t' || c == '\n' || c == '\r';
}

/* Length of the UTF-8 sequence at p[0..n) (lead byte >= 0x80), or 0 when
 * it is not valid (overlong forms, surrogates and > U+10FFFF too). */
static size_t utf8_seq(const uint8_t *p, size_t n)
{
	uint8_t c = p[0];
	size_t k;
	uint8_t lo = 0x80, hi = 0xbf;
	if (c >= 0xc2 && c <= 0xdf)
		k = 2;
	else if (c >= 0xe0 && c <= 0xef) {
		k = 3;
		if (c == 0xe0)
			lo = 0xa0;
		else if (c == 0xed)
			hi = 0x9f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		k = 4;
		if (c == 0xf0)
			lo = 0x90;
		else if (c == 0xf4)
			hi = 0x8f;
	} else
		return 0;
	if (n < k || p[1] < lo || p[1] > hi)
		return 0;
	for (size_t i = 2; i < k; i++)
		if (p[i] < 0x80 || p[i] > 0xbf)
			return 0;
	return k;
}

/* UTF-8 text: printable, tabs and line ends, valid multi-byte
 * sequences.  Anything else (NUL, control bytes, invalid UTF-8) is a
 * binary payload: protobuf, CBOR, encrypted or compressed data. */
bool moat__leak_is_text(const uint8_t *d, size_t n)
{
	size_t i = 0;
	while (i < n) {
		/* 8 ASCII printable bytes at a time */
		while (i + 8 <= n) {
			uint64_t w;
			memcpy(&w, d + i, 8);
			uint64_t hi = w & UINT64_C(0x8080808080808080);
			uint64_t lo = (w - UINT64_C(0x2020202020202020)) &
				      ~w & UINT64_C(0x8080808080808080);
			if (hi | lo)
				break;
			i += 8;
		}
		if (i >= n)
			break;
		uint8_t c = d[i];
		if (c < 0x80) {
			if (!text_byte(c) && c != '\f' && c != '\v')
				return false;
			i++;
			continue;
		}
		size_t k = utf8_seq(d + i, n - i);
		if (!k)
			return false;
		i += k;
	}
	return true;
}

/* Categories whose matches carry their own proof (a private address
 * prefix and dotted quad, a checksum, a vendor prefix and length): one of
 * LEAK_STRONG_MIN bytes or more is never an accident of random bytes, so
 * it needs no island around it. */
#define LEAK_STRONG_MIN 7

static bool strong(enum moat_leak_category c)
{
	switch (c) {
	case MOAT_LEAK_PRIVATE_IPV4:
	case MOAT_LEAK_PRIVATE_IPV6:
	case MOAT_LEAK_MAC_ADDRESS:
	case MOAT_LEAK_JWT:
	case MOAT_LEAK_PRIVATE_KEY:
	case MOAT_LEAK_AWS_KEY:
	case MOAT_LEAK_VENDOR_TOKEN:
	case MOAT_LEAK_PAYMENT_CARD:
	case MOAT_LEAK_IBAN:
	case MOAT_LEAK_DEVICE_ID:
		return true;
	default:
		return false;
	}
}

/* In a binary payload, keep the findings that lie in a run of at least
 * LEAK_ISLAND_MIN printable bytes (or are strong and long enough): a key
 * word and a separator that random bytes happen to spell, with binary
 * right around them, are noise. */
static void island_filter(struct lk_scan *sc)
{
	const uint8_t *d = sc->d;
	for (size_t i = 0; i < sc->ncand; i++) {
		struct lk_cand *c = &sc->cand[i];
		if (c->dead)
			continue;
		size_t s = c->f.start, e = c->f.end, k;
		for (k = s; k < e && text_byte(d[k]); k++)
			;
		if (k < e) {
			c->dead = true;
			continue;
		}
		if (strong(c->f.category) && e - s >= LEAK_STRONG_MIN)
			continue;
		while (s > 0 && e - s < LEAK_ISLAND_MIN && text_byte(d[s - 1]))
			s--;
		while (e < sc->n && e - s < LEAK_ISLAND_MIN && text_byte(d[e]))
			e++;
		if (e - s < LEAK_ISLAND_MIN)
			c->dead = true;
	}
}

static void reset(struct lk_scan *sc, const struct moat_leak_db *db,
		  const uint8_t *data, size_t len)
{
	sc->db = db;
	sc->d = data;
	sc->n = MOAT_MIN(len, db->budget);
	sc->rflags = len > db->budget ? MOAT_LEAK_R_BUDGET : 0;
	sc->stop = false;
	sc->total = sc->ncand = 0;
	sc->pk_from = SIZE_MAX;
	sc->pk_end = SIZE_MAX;
	sc->tlat.set = sc->tlon.set = false;
	sc->any_ssid = false;
	sc->nwifi = 0;
	sc->depth = 0;
	sc->ndecoded = 0;
	sc->touched = 0;
	sc->nslot = 0;
	size_t i = 0;
	while (i < sc->n && i < 256 && lk_space(data[i]))
		i++;
	sc->json = i < sc->n && (data[i] == '{' || data[i] == '[');
	sc->binary = !moat__leak_is_text(data, sc->n);
}

void moat__leak_scan_core(struct moat_leak_scratch *s, struct lk_scan *sc,
			  const uint8_t *data, size_t len)
{
	reset(sc, s->db, data, len);
	run_patterns(s, sc);
	size_t text_from = 0;
	if (sc->json && !sc->stop) {
		sc->rflags |= MOAT_LEAK_R_JSON;
		sort_cands(sc->cand, sc->ncand);
		sc->jnregex = sc->ncand;
		text_from = moat__leak_json_walk(sc);
		/* A match across JSON values (numbers of an array: the
		 * walker reports those pairs itself) is not one value's:
		 * redacting it would break the JSON. */
		for (size_t i = 0; i < sc->jnregex; i++) {
			struct lk_cand *c = &sc->cand[i];
			if (!c->has_path && c->f.start < text_from)
				c->dead = true;
		}
		if (text_from < sc->n) /* the rest is text */
			sc->rflags |= MOAT_LEAK_R_JSON_ERROR;
	}
	if (text_from < sc->n && !sc->stop) {
		moat__leak_kv_scan(sc, text_from, sc->n, false);
		moat__leak_csv_scan(sc, text_from, sc->n, false);
		if (!sc->json && !sc->binary)
			moat__leak_decode_b64(sc, 0, sc->n);
	}
	moat__leak_text_end(sc);
	if (sc->binary)
		island_filter(sc);
	if (sc->binary && !sc->nested)
		moat__leak_decode_cbor(sc);
	resolve(sc);
	link_health(sc);
}

int moat_leak_scan(const struct moat_leak_db *db, struct moat_leak_scratch *s,
		   const uint8_t *data, size_t len,
		   struct moat_leak_result *out)
{
	if (!db || !s || !out || (!data && len) || s->db_id != db->id)
		return MOAT_EINVAL;
	static const uint8_t empty[1];
	memset(out, 0, sizeof(*out));
	moat__leak_scan_core(s, &s->sc, data ? data : empty, len);
	out->scanned = s->sc.n;
	out->flags = s->sc.rflags;
	finish(s, out, MOAT_LEAK_PART_PAYLOAD);
	return (int)out->n;
}

int moat_leak_scan_msg(const struct moat_leak_db *db,
		       struct moat_leak_scratch *s, const uint8_t *topic,
		       size_t tlen, const uint8_t *payload, size_t plen,
		       struct moat_leak_result *out)
{
	if (!db || !s || !out || (!topic && tlen) || (!payload && plen) ||
	    s->db_id != db->id)
		return MOAT_EINVAL;
	static const uint8_t empty[1];
	memset(out, 0, sizeof(*out));
	uint32_t tflags = 0;
	uint32_t h = tlen ? moat__leak_topic_hash(topic, tlen) : 0;
	out->findings = s->out;
	/* a clean topic and the structure of its last clean payload */
	if (tlen && plen &&
	    moat__leak_shape_hit(s, h, topic, tlen, payload, plen)) {
		out->scanned = plen;
		out->flags = MOAT_LEAK_R_JSON;
		return 0;
	}
	bool tclean = true;
	if (tlen && !tcache_clean(s, h, topic, tlen)) {
		moat__leak_scan_core(s, &s->sc, topic, tlen);
		tflags = s->sc.rflags & MOAT_LEAK_R_BUDGET;
		size_t before = out->total;
		finish(s, out, MOAT_LEAK_PART_TOPIC);
		tclean = out->total == before && !tflags;
		if (tclean)
			tcache_add(s, h, topic, tlen);
	}
	s->sc.shape_rec = tclean && tlen && tlen <= LK_SHAPE_TOPIC &&
			  plen <= LK_SHAPE_PAYLOAD;
	moat__leak_scan_core(s, &s->sc, payload ? payload : empty, plen);
	out->scanned = s->sc.n;
	out->flags |= s->sc.rflags | tflags;
	size_t before = out->total;
	finish(s, out, MOAT_LEAK_PART_PAYLOAD);
	if (s->sc.shape_rec && out->total == before)
		moat__leak_shape_store(s, h, topic, tlen, payload, plen);
	s->sc.shape_rec = false;
	return (int)out->n;
}
