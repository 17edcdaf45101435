/* ACL engine: see acl.h.
 *
 * After loading, an ACL is immutable and shared by every worker thread:
 *  - one string pool holds every topic filter, user name and client id;
 *  - rules[] is grouped by owner: the anonymous topic rules, then the
 *    pattern rules, then each user's topic rules.  users[] is sorted by
 *    name and points at its user's range, so a query costs a binary search
 *    plus the rules that apply to its client, and nothing else;
 *  - client ids are grouped per user too, and every claimed id is also in
 *    one of two sorted arrays (exact ids, '*' prefixes) for the "does
 *    another user own this id" check.
 *
 * Matching a topic name, covering a subscription filter and overlapping
 * one all walk the two strings level by level, without recursion (topics
 * may have thousands of levels) and without allocating: a pattern's %u and
 * %c are compared in place against the client's values instead of being
 * substituted into a buffer. */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "acl.h"
#include "codec/mqtt_codec.h"
#include "common/moat_common.h"

#define ACL_MAX_LINE ((size_t)64 * 1024) /* bytes, without the newline */
/* Lines that define something (topic, pattern, user, clientid): bounds
 * memory and load time for a hostile or runaway file. */
#define ACL_MAX_ENTRIES ((size_t)1000000)
/* Client ids are MQTT strings: at most 65535 bytes [MQTT-1.5.3]. */
#define ACL_MAX_CLIENTID ((size_t)65535)
/* %u in clientid lines can make the pool larger than the file. */
#define ACL_POOL_MAX (2 * MOAT_ACL_MAX_BYTES)
#define ACL_ERR_TOKEN 64 /* bytes of an offending token quoted in errors */

/* acl_rule.access bits; a deny rule refuses both directions. */
#define ACL_GRANT_READ 1u
#define ACL_GRANT_WRITE 2u
#define ACL_DENY 4u
/* acl_rule.subst bits: which placeholders a pattern's filter contains. */
#define ACL_SUB_USER 1u
#define ACL_SUB_CLIENTID 2u

/* Owners of parsed rules before they are grouped (else a raw user index). */
#define OWNER_ANON UINT32_MAX
#define OWNER_PATTERN (UINT32_MAX - 1)

struct acl_span {
	const char *p;
	size_t n;
};

struct acl_rule {
	const char *f; /* topic filter; a pattern's with %u / %c unreplaced */
	uint32_t len;
	uint8_t access; /* ACL_GRANT_* or ACL_DENY */
	uint8_t subst;  /* ACL_SUB_* */
};

struct acl_cid {
	const char *s;
	uint32_t len;
	bool prefix; /* the line ended in '*': s is a prefix */
};

struct acl_user {
	const char *name;
	uint32_t len;
	uint32_t rule0, nrules; /* this user's topic rules in rules[] */
	uint32_t cid0, ncids;   /* this user's client ids in cids[] */
};

struct moat_acl {
	char *pool;
	struct acl_rule *rules;
	size_t nanon;    /* rules[0, nanon): anonymous topic rules */
	size_t npattern; /* rules[nanon, nanon + npattern): patterns */
	size_t nrules;   /* all of them */
	struct acl_user *users; /* sorted by name, unique */
	size_t nusers;
	struct acl_cid *cids; /* grouped by user */
	struct acl_cid *exact, *prefix; /* every claimed id, sorted */
	size_t ncids, nexact, nprefix;
	bool uses_user, uses_clientid;
};

/* ---- spans and levels ----------------------------------------------- */

static int span_cmp(const char *a, size_t an, const char *b, size_t bn)
{
	int c = memcmp(a, b, MOAT_MIN(an, bn));
	if (c)
		return c;
	return an < bn ? -1 : an > bn;
}

static bool span_is(struct acl_span s, const char *word)
{
	size_t n = strlen(word);
	return s.n == n && memcmp(s.p, word, n) == 0;
}

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v';
}

static struct acl_span trim(struct acl_span s)
{
	while (s.n && is_space(s.p[0])) {
		s.p++;
		s.n--;
	}
	while (s.n && is_space(s.p[s.n - 1]))
		s.n--;
	return s;
}

/* The first word of *s; *s becomes the rest, without leading spaces. */
static struct acl_span take_word(struct acl_span *s)
{
	size_t i = 0;
	while (i < s->n && !is_space(s->p[i]))
		i++;
	struct acl_span w = {s->p, i};
	struct acl_span rest = {s->p + i, s->n - i};
	*s = trim(rest);
	return w;
}

/* Iterates over the '/'-separated levels of a topic or filter. */
struct lvl_it {
	const char *s;
	size_t len, pos;
	bool done;
};

static void lvl_init(struct lvl_it *it, const char *s, size_t len)
{
	it->s = s;
	it->len = len;
	it->pos = 0;
	it->done = false;
}

static bool lvl_next(struct lvl_it *it, struct acl_span *lvl)
{
	if (it->done)
		return false;
	const char *start = it->s + it->pos;
	const char *slash = memchr(start, '/', it->len - it->pos);
	size_t end = slash ? (size_t)(slash - it->s) : it->len;
	lvl->p = start;
	lvl->n = end - it->pos;
	if (slash)
		it->pos = end + 1;
	else
		it->done = true;
	return true;
}

static bool is_plus(struct acl_span l)
{
	return l.n == 1 && l.p[0] == '+';
}

static bool is_hash(struct acl_span l)
{
	return l.n == 1 && l.p[0] == '#';
}

/* In a valid filter a leading '+' or '#' is its whole first level. */
static bool wild_first(const char *f)
{
	return f[0] == '+' || f[0] == '#';
}

/* ---- the client a query is about ---------------------------------------- */

struct acl_who {
	const char *user, *cid;
	size_t ulen, clen;
	bool user_ok, cid_ok; /* usable as %u / %c */
	const struct acl_user *section;
};

/* A value may replace %u or %c only if it cannot change the filter's
 * structure (CVE-2017-7650: a user named "#" must not gain "foo/#/...");
 * an empty one would make every empty-id client share one topic tree. */
static bool subst_value_ok(const char *s, size_t n)
{
	if (!s || n == 0)
		return false;
	for (size_t i = 0; i < n; i++)
		if (s[i] == '+' || s[i] == '#' || s[i] == '/')
			return false;
	return true;
}

static const struct acl_user *find_user(const struct moat_acl *acl,
					const char *name, size_t len)
{
	size_t lo = 0, hi = acl->nusers;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const struct acl_user *u = &acl->users[mid];
		int c = span_cmp(u->name, u->len, name, len);
		if (c == 0)
			return u;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

static void who_init(struct acl_who *w, const struct moat_acl *acl,
		     const char *user, const char *cid)
{
	w->user = user;
	w->cid = cid;
	w->ulen = user ? strlen(user) : 0;
	w->clen = cid ? strlen(cid) : 0;
	w->user_ok = acl->uses_user && subst_value_ok(user, w->ulen);
	w->cid_ok = acl->uses_clientid && subst_value_ok(cid, w->clen);
	w->section = user ? find_user(acl, user, w->ulen) : NULL;
}

static bool rule_applies(const struct acl_rule *r, const struct acl_who *w)
{
	if ((r->subst & ACL_SUB_USER) && !w->user_ok)
		return false;
	if ((r->subst & ACL_SUB_CLIENTID) && !w->cid_ok)
		return false;
	return true;
}

/* The client's value for the placeholder "%<c>", or NULL when "%<c>" is
 * not a placeholder of this rule. */
static const char *placeholder(char c, uint8_t subst, const struct acl_who *w,
			       size_t *n)
{
	if (c == 'u' && (subst & ACL_SUB_USER)) {
		*n = w->ulen;
		return w->user;
	}
	if (c == 'c' && (subst & ACL_SUB_CLIENTID)) {
		*n = w->clen;
		return w->cid;
	}
	return NULL;
}

/* ---- matching, covering, overlapping -------------------------------------
 * r is a rule's literal level (a pattern's placeholders replaced by the
 * client's values, which contain no '/', '+' or '#'); t a plain level. */
static bool level_eq(struct acl_span r, uint8_t subst, const struct acl_who *w,
		     struct acl_span t)
{
	if (!subst)
		return r.n == t.n && memcmp(r.p, t.p, r.n) == 0;
	size_t j = 0;
	for (size_t i = 0; i < r.n;) {
		size_t vn = 0;
		const char *v = r.p[i] == '%' && i + 1 < r.n
					? placeholder(r.p[i + 1], subst, w, &vn)
					: NULL;
		if (v) {
			if (t.n - j < vn || memcmp(t.p + j, v, vn) != 0)
				return false;
			j += vn;
			i += 2;
		} else {
			if (j == t.n || t.p[j] != r.p[i])
				return false;
			i++;
			j++;
		}
	}
	return j == t.n;
}

/* First byte of the rule's filter once its placeholders are replaced
 * (values are never empty, see subst_value_ok). */
static char rule_first_char(const struct acl_rule *r, const struct acl_who *w)
{
	size_t n;
	const char *v = r->len >= 2 && r->f[0] == '%'
				? placeholder(r->f[1], r->subst, w, &n)
				: NULL;
	return v ? v[0] : r->f[0];
}

typedef bool (*acl_test_fn)(const struct acl_rule *r, const struct acl_who *w,
			    const char *s, size_t n);

/* Does the rule's filter match topic name t? */
static bool rule_matches(const struct acl_rule *r, const struct acl_who *w,
			 const char *t, size_t tn)
{
	if (t[0] == '$' && wild_first(r->f))
		return false; /* [MQTT-4.7.2-1] */
	struct lvl_it ri, ti;
	lvl_init(&ri, r->f, r->len);
	lvl_init(&ti, t, tn);
	for (;;) {
		struct acl_span a, b;
		bool ra = lvl_next(&ri, &a), tb = lvl_next(&ti, &b);
		if (ra && is_hash(a))
			return true; /* also matches the parent level */
		if (!ra || !tb)
			return ra == tb;
		if (!is_plus(a) && !level_eq(a, r->subst, w, b))
			return false;
	}
}

/* A '#' at level `depth` (1-based) also matches its parent, the name made
 * of the levels before it, unless that name would be empty: at the top
 * level, and under an empty first level ("/#" cannot match ""). */
static bool hash_has_parent(size_t depth, bool first_empty)
{
	return depth > 2 || (depth == 2 && !first_empty);
}

/* Does the rule's filter match every topic name that filter f matches? */
static bool rule_covers(const struct acl_rule *r, const struct acl_who *w,
			const char *f, size_t fn)
{
	/* a leading wildcard never matches the '$' names a literal "$..."
	 * level names */
	if (f[0] == '$' && wild_first(r->f))
		return false;
	struct lvl_it ri, fi;
	lvl_init(&ri, r->f, r->len);
	lvl_init(&fi, f, fn);
	bool first_empty = false;
	for (size_t depth = 1;; depth++) {
		struct acl_span a, b;
		bool ra = lvl_next(&ri, &a), fb = lvl_next(&fi, &b);
		if (ra && is_hash(a))
			return true;
		/* the rule ended first: f matches longer names (even a '#'
		 * of f, which matches its children); f ended first: the
		 * rule wants a level that f's names lack */
		if (!ra || !fb)
			return ra == fb;
		if (is_hash(b)) {
			/* f matches the parent, which the rule does not;
			 * without a parent f's "#" matches what "+/#" does */
			if (hash_has_parent(depth, first_empty))
				return false;
			return is_plus(a) && lvl_next(&ri, &a) && is_hash(a);
		}
		if (depth == 1)
			first_empty = b.n == 0;
		if (is_plus(a))
			continue;
		if (is_plus(b) || !level_eq(a, r->subst, w, b))
			return false;
	}
}

/* Is there a topic name that both the rule's filter and filter f match? */
static bool rule_overlaps(const struct acl_rule *r, const struct acl_who *w,
			  const char *f, size_t fn)
{
	if ((f[0] == '$' && wild_first(r->f)) ||
	    (wild_first(f) && rule_first_char(r, w) == '$'))
		return false; /* [MQTT-4.7.2-1] */
	struct lvl_it ri, fi;
	lvl_init(&ri, r->f, r->len);
	lvl_init(&fi, f, fn);
	bool first_empty = false;
	for (size_t depth = 1;; depth++) {
		struct acl_span a, b;
		bool ra = lvl_next(&ri, &a), fb = lvl_next(&fi, &b);
		/* '#' also matches its parent, so the other side may end
		 * here (if the parent is a name) or go on */
		if ((ra && is_hash(a)) || (fb && is_hash(b)))
			return (ra && fb) ||
			       hash_has_parent(depth, first_empty);
		if (!ra || !fb)
			return ra == fb;
		if (depth == 1) /* a literal empty level on either side */
			first_empty = a.n == 0 || b.n == 0;
		if (is_plus(a) || is_plus(b))
			continue;
		if (!level_eq(a, r->subst, w, b))
			return false;
	}
}

/* ---- decisions ---------------------------------------------------------- */

/* Grant when some applicable rule with access `need` passes grant_test and
 * no applicable deny rule passes deny_test.  Order in the file does not
 * matter: a deny always wins. */
static bool acl_decide(const struct moat_acl *acl, const struct acl_who *w,
		       uint8_t need, acl_test_fn grant_test,
		       acl_test_fn deny_test, const char *s, size_t n)
{
	const struct acl_rule *own = acl->rules;
	size_t nown = acl->nanon;
	if (w->user) {
		own = w->section ? acl->rules + w->section->rule0 : NULL;
		nown = w->section ? w->section->nrules : 0;
	}
	const struct acl_rule *groups[2] = {own, acl->rules + acl->nanon};
	size_t counts[2] = {nown, acl->npattern};
	bool granted = false;
	for (size_t g = 0; g < 2; g++) {
		for (size_t i = 0; i < counts[g]; i++) {
			const struct acl_rule *r = &groups[g][i];
			if (!rule_applies(r, w))
				continue;
			if (r->access & ACL_DENY) {
				if (deny_test(r, w, s, n))
					return false;
			} else if (!granted && (r->access & need) &&
				   grant_test(r, w, s, n)) {
				granted = true;
			}
		}
	}
	return granted;
}

bool moat_acl_allows(const struct moat_acl *acl, const char *user,
		     const char *clientid, const char *topic, size_t len,
		     enum moat_acl_access access)
{
	if (!acl || !topic || len == 0 || acl->nrules == 0)
		return false;
	const uint8_t *t = (const uint8_t *)topic;
	struct acl_who w;
	switch (access) {
	case MOAT_ACL_READ:
	case MOAT_ACL_WRITE:
		if (!moat_topic_name_valid(t, len))
			return false;
		who_init(&w, acl, user, clientid);
		return acl_decide(acl, &w,
				  access == MOAT_ACL_READ ? ACL_GRANT_READ
							  : ACL_GRANT_WRITE,
				  rule_matches, rule_matches, topic, len);
	case MOAT_ACL_SUBSCRIBE:
		if (!moat_topic_filter_valid(t, len))
			return false;
		who_init(&w, acl, user, clientid);
		return acl_decide(acl, &w, ACL_GRANT_READ, rule_covers,
				  rule_covers, topic, len);
	}
	return false;
}

/* Also requires the covering grant itself, so that a caller that skipped
 * moat_acl_allows(SUBSCRIBE) still cannot turn off delivery checks. */
bool moat_acl_filter_fully_readable(const struct moat_acl *acl,
				    const char *user, const char *clientid,
				    const char *filter, size_t len)
{
	if (!acl || !filter || len == 0 || acl->nrules == 0 ||
	    !moat_topic_filter_valid((const uint8_t *)filter, len))
		return false;
	struct acl_who w;
	who_init(&w, acl, user, clientid);
	return acl_decide(acl, &w, ACL_GRANT_READ, rule_covers, rule_overlaps,
			  filter, len);
}

/* ---- client ids ----------------------------------------------------------- */

static bool cid_matches(const struct acl_cid *c, const char *id, size_t n)
{
	if (c->prefix)
		return n >= c->len && memcmp(id, c->s, c->len) == 0;
	return n == c->len && memcmp(id, c->s, n) == 0;
}

/* Number of entries of the sorted array v that are <= key. */
static size_t cid_upper(const struct acl_cid *v, size_t count, const char *key,
			size_t n)
{
	size_t lo = 0, hi = count;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (span_cmp(v[mid].s, v[mid].len, key, n) <= 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static size_t common_prefix(const char *a, size_t an, const char *b,
			    size_t bn)
{
	size_t i = 0, n = MOAT_MIN(an, bn);
	while (i < n && a[i] == b[i])
		i++;
	return i;
}

/* Does any user's clientid line match id?  For the prefixes: the largest
 * prefix p <= id is either a prefix of id, or every prefix of id in the
 * set is also a prefix of p, hence of id's first common_prefix(p, id)
 * bytes: search again with that shorter key, which strictly shrinks. */
/* How specifically a claim matches id: 0 = not at all, a prefix claim its
 * length, an exact claim the most (SIZE_MAX). */
static size_t cid_specificity(const struct acl_cid *c, const char *id,
			      size_t n)
{
	if (!cid_matches(c, id, n))
		return 0;
	return c->prefix ? c->len : SIZE_MAX;
}

/* The most specific claim of any user on id (see cid_specificity). */
static size_t cid_best_claim(const struct moat_acl *acl, const char *id,
			     size_t n)
{
	size_t i = cid_upper(acl->exact, acl->nexact, id, n);
	if (i && cid_matches(&acl->exact[i - 1], id, n))
		return SIZE_MAX;
	/* The greatest prefix entry <= id that is a prefix of id is the
	 * longest such: walk down through shorter common prefixes. */
	for (size_t key = n;;) {
		i = cid_upper(acl->prefix, acl->nprefix, id, key);
		if (i == 0)
			return 0;
		const struct acl_cid *p = &acl->prefix[i - 1];
		size_t common = common_prefix(p->s, p->len, id, key);
		if (common == p->len)
			return p->len;
		key = common;
	}
}

/* The most specific claim wins: with users "sensor" (clientid %u-*) and
 * "sensor-1" (clientid %u-*), the id "sensor-1-x" is sensor-1's, not
 * something "sensor" may take because its own prefix also matches. */
bool moat_acl_clientid_allowed(const struct moat_acl *acl, const char *user,
			       const char *clientid)
{
	if (!acl)
		return false;
	const char *id = clientid ? clientid : "";
	size_t n = strlen(id);
	const struct acl_user *u = user ? find_user(acl, user, strlen(user))
					: NULL;
	size_t best = cid_best_claim(acl, id, n);
	if (!u || !u->ncids)
		return best == 0; /* every claim is another user's */
	size_t own = 0;
	for (uint32_t i = 0; i < u->ncids; i++)
		own = MOAT_MAX(own, cid_specificity(&acl->cids[u->cid0 + i],
						    id, n));
	return own && own >= best;
}

bool moat_acl_uses_user_pattern(const struct moat_acl *acl)
{
	return acl && acl->uses_user;
}

bool moat_acl_uses_clientid_pattern(const struct moat_acl *acl)
{
	return acl && acl->uses_clientid;
}

size_t moat_acl_rule_count(const struct moat_acl *acl)
{
	return acl ? acl->nrules : 0;
}

void moat_acl_free(struct moat_acl *acl)
{
	if (!acl)
		return;
	moat_free(acl->pool);
	moat_free(acl->rules);
	moat_free(acl->users);
	moat_free(acl->cids);
	moat_free(acl->exact);
	moat_free(acl->prefix);
	moat_free(acl);
}

/* ---- parsing -------------------------------------------------------------
 * Lines are parsed into raw arrays that refer to the pool by offset (it
 * grows); acl_build() then groups them by owner and turns offsets into
 * pointers. */

struct raw_rule {
	uint32_t off, len, owner;
	uint8_t access, subst;
};

struct raw_user {
	uint32_t off, len;
};

struct raw_cid {
	uint32_t off, len, owner;
	bool prefix;
};

struct acl_parse {
	const char *name;
	size_t lineno;
	char *err;
	size_t errsz;
	struct moat_buf pool;
	struct raw_rule *rules;
	struct raw_user *users;
	struct raw_cid *cids;
	size_t nrules, nusers, ncids;
	size_t caprules, capusers, capcids;
	size_t entries;    /* for ACL_MAX_ENTRIES */
	uint32_t cur_user; /* OWNER_ANON before the first user line */
	bool uses_user, uses_clientid;
};

static int fail(struct acl_parse *ps, int rc, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int fail(struct acl_parse *ps, int rc, const char *fmt, ...)
{
	if (!ps->err || !ps->errsz)
		return rc;
	int n = snprintf(ps->err, ps->errsz, "%s:%zu: ", ps->name, ps->lineno);
	if (n < 0 || (size_t)n >= ps->errsz)
		return rc;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(ps->err + n, ps->errsz - (size_t)n, fmt, ap);
	va_end(ap);
	return rc;
}

static const char *esc(struct acl_span s, char out[ACL_ERR_TOKEN])
{
	return moat_log_escape((const uint8_t *)s.p, s.n, out, ACL_ERR_TOKEN);
}

/* arr (capacity *cap, used elements) with room for one more: arr itself,
 * a moved copy (*cap updated), or NULL when out of memory. */
static void *grow(void *arr, size_t *cap, size_t used, size_t elem)
{
	if (used < *cap)
		return arr;
	size_t ncap = *cap ? *cap * 2 : 16;
	if (ncap > SIZE_MAX / elem)
		return NULL;
	void *np = moat_realloc(arr, ncap * elem);
	if (np)
		*cap = ncap;
	return np;
}

static int count_entry(struct acl_parse *ps)
{
	if (++ps->entries > ACL_MAX_ENTRIES)
		return fail(ps, MOAT_ELIMIT,
			    "more than %zu rules (topic, pattern, user and "
			    "clientid lines)",
			    ACL_MAX_ENTRIES);
	return MOAT_OK;
}

/* Room for n more pool bytes: the pool offset they will start at. */
static int pool_reserve(struct acl_parse *ps, size_t n, uint32_t *off)
{
	if (n > ACL_POOL_MAX - ps->pool.len)
		return fail(ps, MOAT_ELIMIT,
			    "ACL larger than %zu bytes once %%u is replaced",
			    ACL_POOL_MAX);
	if (!moat_buf_reserve(&ps->pool, n))
		return fail(ps, MOAT_ENOMEM, "out of memory");
	*off = (uint32_t)ps->pool.len;
	return MOAT_OK;
}

static int pool_add(struct acl_parse *ps, struct acl_span s, uint32_t *off)
{
	int rc = pool_reserve(ps, s.n, off);
	if (rc)
		return rc;
	memcpy(ps->pool.data + *off, s.p, s.n);
	moat_buf_commit(&ps->pool, s.n);
	return MOAT_OK;
}

static int access_word(struct acl_span w)
{
	if (span_is(w, "read"))
		return (int)ACL_GRANT_READ;
	if (span_is(w, "write"))
		return (int)ACL_GRANT_WRITE;
	if (span_is(w, "readwrite"))
		return (int)(ACL_GRANT_READ | ACL_GRANT_WRITE);
	if (span_is(w, "deny"))
		return (int)ACL_DENY;
	return -1;
}

/* Placeholders in a pattern's filter, scanned left to right like
 * level_eq() does ("%%u" is a '%' and then %u). */
static uint8_t scan_subst(struct acl_span f)
{
	uint8_t s = 0;
	for (size_t i = 0; i + 1 < f.n; i++) {
		if (f.p[i] != '%')
			continue;
		if (f.p[i + 1] == 'u')
			s |= ACL_SUB_USER;
		else if (f.p[i + 1] == 'c')
			s |= ACL_SUB_CLIENTID;
		else
			continue;
		i++;
	}
	return s;
}

/* "[ACCESS] TOPIC": a missing access word means readwrite.  A first word
 * that is not an access word but is followed by more text is refused
 * rather than read as part of the topic, so that a typo ("raed a/b") does
 * not silently grant readwrite on "raed a/b". */
static int parse_access_topic(struct acl_parse *ps, struct acl_span rest,
			      uint8_t *access, struct acl_span *topic)
{
	char t[ACL_ERR_TOKEN];
	if (rest.n == 0)
		return fail(ps, MOAT_EINVAL, "missing topic");
	struct acl_span after = rest;
	struct acl_span word = take_word(&after);
	int acc = access_word(word);
	if (after.n == 0) {
		if (acc >= 0)
			return fail(ps, MOAT_EINVAL, "missing topic after '%s'",
				    esc(word, t));
		*access = ACL_GRANT_READ | ACL_GRANT_WRITE;
		*topic = word;
		return MOAT_OK;
	}
	if (acc < 0)
		return fail(ps, MOAT_EINVAL,
			    "unknown access '%s' (read, write, readwrite or "
			    "deny; a topic with spaces needs one first)",
			    esc(word, t));
	*access = (uint8_t)acc;
	*topic = after;
	return MOAT_OK;
}

static int parse_rule(struct acl_parse *ps, struct acl_span rest, bool pattern)
{
	char t[ACL_ERR_TOKEN];
	uint8_t access = 0;
	struct acl_span topic = {NULL, 0};
	int rc = parse_access_topic(ps, rest, &access, &topic);
	if (rc)
		return rc;
	if (!moat_topic_filter_valid((const uint8_t *)topic.p, topic.n))
		return fail(ps, MOAT_EINVAL, "invalid topic filter '%s'",
			    esc(topic, t));
	if ((rc = count_entry(ps)))
		return rc;
	struct raw_rule *rules = grow(ps->rules, &ps->caprules, ps->nrules,
				      sizeof(*rules));
	if (!rules)
		return fail(ps, MOAT_ENOMEM, "out of memory");
	ps->rules = rules;
	struct raw_rule *r = &rules[ps->nrules];
	if ((rc = pool_add(ps, topic, &r->off)))
		return rc;
	r->len = (uint32_t)topic.n;
	r->owner = pattern ? OWNER_PATTERN : ps->cur_user;
	r->access = access;
	r->subst = pattern ? scan_subst(topic) : 0;
	ps->uses_user |= (r->subst & ACL_SUB_USER) != 0;
	ps->uses_clientid |= (r->subst & ACL_SUB_CLIENTID) != 0;
	ps->nrules++;
	return MOAT_OK;
}

static int parse_user(struct acl_parse *ps, struct acl_span name)
{
	int rc;
	if (name.n == 0)
		return fail(ps, MOAT_EINVAL, "missing user name");
	if ((rc = count_entry(ps)))
		return rc;
	struct raw_user *users = grow(ps->users, &ps->capusers, ps->nusers,
				      sizeof(*users));
	if (!users)
		return fail(ps, MOAT_ENOMEM, "out of memory");
	ps->users = users;
	struct raw_user *u = &users[ps->nusers];
	if ((rc = pool_add(ps, name, &u->off)))
		return rc;
	u->len = (uint32_t)name.n;
	ps->cur_user = (uint32_t)ps->nusers++;
	return MOAT_OK;
}

/* Length of id with every "%u" replaced by a user name of ulen bytes. */
static size_t cid_expanded_len(struct acl_span id, size_t ulen)
{
	size_t n = 0;
	for (size_t i = 0; i < id.n; i++) {
		if (id.p[i] == '%' && i + 1 < id.n && id.p[i + 1] == 'u') {
			n += ulen;
			i++;
		} else {
			n++;
		}
	}
	return n;
}

/* Appends id with %u replaced by the current user's name to the pool. */
static int pool_add_cid(struct acl_parse *ps, struct acl_span id,
			uint32_t *off, uint32_t *len)
{
	const struct raw_user *u = &ps->users[ps->cur_user];
	/* at most 32768 "%u" of at most 64 KiB each: no overflow */
	size_t n = cid_expanded_len(id, u->len);
	if (n > ACL_MAX_CLIENTID)
		return fail(ps, MOAT_ELIMIT,
			    "client id longer than %zu bytes once %%u is "
			    "replaced",
			    ACL_MAX_CLIENTID);
	int rc = pool_reserve(ps, n, off);
	if (rc)
		return rc;
	/* the pool no longer moves: the user name may be read from it */
	char *dst = (char *)ps->pool.data + *off;
	const char *name = (const char *)ps->pool.data + u->off;
	for (size_t i = 0; i < id.n; i++) {
		if (id.p[i] == '%' && i + 1 < id.n && id.p[i + 1] == 'u') {
			memcpy(dst, name, u->len);
			dst += u->len;
			i++;
		} else {
			*dst++ = id.p[i];
		}
	}
	moat_buf_commit(&ps->pool, n);
	*len = (uint32_t)n;
	return MOAT_OK;
}

static int parse_clientid(struct acl_parse *ps, struct acl_span id)
{
	int rc;
	if (ps->cur_user == OWNER_ANON)
		return fail(ps, MOAT_EINVAL,
			    "clientid outside a user section (put it after "
			    "a 'user' line)");
	if (id.n == 0)
		return fail(ps, MOAT_EINVAL, "missing client id");
	bool prefix = id.p[id.n - 1] == '*';
	if (prefix)
		id.n--;
	/* "*" would claim every id, locking out all other users */
	if (id.n == 0)
		return fail(ps, MOAT_EINVAL,
			    "client id '*' would claim every client id");
	if ((rc = count_entry(ps)))
		return rc;
	struct raw_cid *cids = grow(ps->cids, &ps->capcids, ps->ncids,
				    sizeof(*cids));
	if (!cids)
		return fail(ps, MOAT_ENOMEM, "out of memory");
	ps->cids = cids;
	struct raw_cid *c = &cids[ps->ncids];
	if ((rc = pool_add_cid(ps, id, &c->off, &c->len)))
		return rc;
	c->owner = ps->cur_user;
	c->prefix = prefix;
	ps->ncids++;
	return MOAT_OK;
}

static int parse_line(struct acl_parse *ps, struct acl_span line)
{
	char t[ACL_ERR_TOKEN];
	line = trim(line);
	if (line.n == 0 || line.p[0] == '#')
		return MOAT_OK;
	if (!moat_utf8_valid((const uint8_t *)line.p, line.n))
		return fail(ps, MOAT_EINVAL, "invalid UTF-8 (or a NUL byte)");
	struct acl_span rest = line;
	struct acl_span kw = take_word(&rest);
	if (span_is(kw, "topic"))
		return parse_rule(ps, rest, false);
	if (span_is(kw, "pattern"))
		return parse_rule(ps, rest, true);
	if (span_is(kw, "user"))
		return parse_user(ps, rest);
	if (span_is(kw, "clientid"))
		return parse_clientid(ps, rest);
	return fail(ps, MOAT_EINVAL,
		    "unknown keyword '%s' (topic, pattern, user or clientid)",
		    esc(kw, t));
}

static int parse_lines(struct acl_parse *ps, const char *text, size_t len)
{
	size_t pos = 0;
	while (pos < len) {
		const char *nl = memchr(text + pos, '\n', len - pos);
		size_t end = nl ? (size_t)(nl - text) : len;
		ps->lineno++;
		if (end - pos > ACL_MAX_LINE)
			return fail(ps, MOAT_ELIMIT,
				    "line longer than %zu bytes", ACL_MAX_LINE);
		struct acl_span line = {text + pos, end - pos};
		int rc = parse_line(ps, line);
		if (rc)
			return rc;
		pos = end + 1;
	}
	return MOAT_OK;
}

/* ---- building the immutable ACL ----------------------------------------- */

struct user_key {
	const char *name;
	uint32_t len, raw;
};

static int user_key_cmp(const void *a, const void *b)
{
	const struct user_key *x = a, *y = b;
	int c = span_cmp(x->name, x->len, y->name, y->len);
	if (c)
		return c;
	return x->raw < y->raw ? -1 : x->raw > y->raw;
}

static int cid_cmp(const void *a, const void *b)
{
	const struct acl_cid *x = a, *y = b;
	return span_cmp(x->s, x->len, y->s, y->len);
}

/* Sort users by name and merge repeated sections of one user: canon[raw]
 * is the index of raw user line `raw` in acl->users. */
static int build_users(struct moat_acl *acl, const struct acl_parse *ps,
		       uint32_t *canon)
{
	size_t n = ps->nusers;
	struct user_key *keys = moat_malloc(n * sizeof(*keys));
	acl->users = moat_calloc(n, sizeof(*acl->users));
	if (!keys || !acl->users) {
		moat_free(keys);
		return MOAT_ENOMEM;
	}
	for (size_t i = 0; i < n; i++)
		keys[i] = (struct user_key){acl->pool + ps->users[i].off,
					    ps->users[i].len, (uint32_t)i};
	qsort(keys, n, sizeof(*keys), user_key_cmp);
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		if (i && span_cmp(keys[i].name, keys[i].len, keys[i - 1].name,
				  keys[i - 1].len) != 0)
			k++;
		acl->users[k].name = keys[i].name;
		acl->users[k].len = keys[i].len;
		canon[keys[i].raw] = (uint32_t)k;
	}
	acl->nusers = k + 1;
	moat_free(keys);
	return MOAT_OK;
}

static size_t rule_bucket(uint32_t owner, const uint32_t *canon)
{
	if (owner == OWNER_ANON)
		return 0;
	if (owner == OWNER_PATTERN)
		return 1;
	return 2 + (size_t)canon[owner];
}

/* Group the rules: anonymous, patterns, then user by user (a stable
 * counting sort, so each group keeps file order). */
static int build_rules(struct moat_acl *acl, const struct acl_parse *ps,
		       const uint32_t *canon)
{
	size_t nb = 2 + acl->nusers;
	size_t *start = moat_calloc(nb + 1, sizeof(*start));
	acl->rules = moat_malloc(ps->nrules * sizeof(*acl->rules));
	if (!start || !acl->rules) {
		moat_free(start);
		return MOAT_ENOMEM;
	}
	for (size_t i = 0; i < ps->nrules; i++)
		start[rule_bucket(ps->rules[i].owner, canon) + 1]++;
	for (size_t b = 0; b < nb; b++)
		start[b + 1] += start[b];
	acl->nanon = start[1];
	acl->npattern = start[2] - start[1];
	for (size_t k = 0; k < acl->nusers; k++) {
		acl->users[k].rule0 = (uint32_t)start[2 + k];
		acl->users[k].nrules = (uint32_t)(start[3 + k] - start[2 + k]);
	}
	for (size_t i = 0; i < ps->nrules; i++) {
		const struct raw_rule *r = &ps->rules[i];
		size_t at = start[rule_bucket(r->owner, canon)]++;
		acl->rules[at] = (struct acl_rule){acl->pool + r->off, r->len,
						   r->access, r->subst};
	}
	acl->nrules = ps->nrules;
	moat_free(start);
	return MOAT_OK;
}

/* Group client ids by user and index every claim (exact and prefix). */
static int build_cids(struct moat_acl *acl, const struct acl_parse *ps,
		      const uint32_t *canon)
{
	size_t n = ps->ncids, *start = moat_calloc(acl->nusers + 1,
						     sizeof(*start));
	acl->cids = moat_malloc(n * sizeof(*acl->cids));
	acl->exact = moat_malloc(n * sizeof(*acl->exact));
	acl->prefix = moat_malloc(n * sizeof(*acl->prefix));
	if (!start || !acl->cids || !acl->exact || !acl->prefix) {
		moat_free(start);
		return MOAT_ENOMEM;
	}
	for (size_t i = 0; i < n; i++)
		start[canon[ps->cids[i].owner] + 1]++;
	for (size_t k = 0; k < acl->nusers; k++) {
		acl->users[k].cid0 = (uint32_t)start[k];
		acl->users[k].ncids = (uint32_t)start[k + 1];
		start[k + 1] += start[k];
	}
	for (size_t i = 0; i < n; i++) {
		const struct raw_cid *r = &ps->cids[i];
		struct acl_cid c = {acl->pool + r->off, r->len, r->prefix};
		acl->cids[start[canon[r->owner]]++] = c;
		if (c.prefix)
			acl->prefix[acl->nprefix++] = c;
		else
			acl->exact[acl->nexact++] = c;
	}
	acl->ncids = n;
	qsort(acl->exact, acl->nexact, sizeof(*acl->exact), cid_cmp);
	qsort(acl->prefix, acl->nprefix, sizeof(*acl->prefix), cid_cmp);
	moat_free(start);
	return MOAT_OK;
}

static int acl_build(struct acl_parse *ps, struct moat_acl **out)
{
	struct moat_acl *acl = moat_calloc(1, sizeof(*acl));
	if (!acl)
		return MOAT_ENOMEM;
	/* the pool is final: give back the growth slack */
	acl->pool = (char *)ps->pool.data;
	if (acl->pool && ps->pool.len) {
		char *p = moat_realloc(acl->pool, ps->pool.len);
		if (p)
			acl->pool = p;
	}
	ps->pool.data = NULL;
	acl->uses_user = ps->uses_user;
	acl->uses_clientid = ps->uses_clientid;
	uint32_t *canon = moat_malloc((ps->nusers + 1) * sizeof(*canon));
	int rc = MOAT_ENOMEM;
	if (!canon)
		goto out;
	if (ps->nusers && (rc = build_users(acl, ps, canon)))
		goto out;
	if ((ps->nrules && (rc = build_rules(acl, ps, canon))) ||
	    (ps->ncids && (rc = build_cids(acl, ps, canon))))
		goto out;
	rc = MOAT_OK;
	*out = acl;
	acl = NULL;
out:
	moat_free(canon);
	moat_acl_free(acl);
	return rc;
}

int moat_acl_parse(const char *text, size_t len, const char *name,
		   struct moat_acl **out, char *err, size_t errsz)
{
	struct acl_parse ps = {
		.name = name ? name : "(acl)",
		.err = err,
		.errsz = errsz,
		.cur_user = OWNER_ANON,
	};
	*out = NULL;
	if (err && errsz)
		err[0] = '\0';
	if (len > MOAT_ACL_MAX_BYTES) {
		if (err && errsz)
			snprintf(err, errsz, "%s: larger than %zu bytes",
				 ps.name, MOAT_ACL_MAX_BYTES);
		return MOAT_ELIMIT;
	}
	moat_buf_init(&ps.pool, ACL_POOL_MAX);
	int rc = text || len == 0 ? parse_lines(&ps, text, len)
				  : fail(&ps, MOAT_EINVAL, "no text");
	if (rc == MOAT_OK && (rc = acl_build(&ps, out)) != MOAT_OK)
		fail(&ps, rc, "out of memory");
	moat_buf_cleanup(&ps.pool);
	moat_free(ps.rules);
	moat_free(ps.users);
	moat_free(ps.cids);
	return rc;
}

int moat_acl_load(const char *path, struct moat_acl **out, char *err,
		  size_t errsz)
{
	char *text;
	size_t len;
	*out = NULL;
	int rc = moat_file_read(path, MOAT_ACL_MAX_BYTES, true, &text, &len,
				err, errsz);
	if (rc)
		return rc;
	rc = moat_acl_parse(text, len, path, out, err, errsz);
	moat_free(text);
	return rc;
}
