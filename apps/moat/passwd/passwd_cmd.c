/* `moat passwd`: add, change or delete a user in a mosquitto-format
 * password file (src/auth/passwd.h), the counterpart of mosquitto_passwd.
 *
 * Differences from mosquitto_passwd, on purpose:
 *  - never a password on the command line (-b, or a third argument): it
 *    would be kept in shell history and shown to every local user by ps;
 *    the password comes from the terminal, or from stdin with --stdin;
 *  - weak passwords are refused (moat_passwd_weak);
 *  - new hashes are argon2id; other users' lines, comments and layout are
 *    kept byte for byte, so mosquitto's $6$/$7$ lines survive an edit;
 *  - a file the broker would refuse to load is not edited, and the result
 *    is checked with the broker's own parser before it is written;
 *  - the file is replaced atomically (temporary file, fsync, rename) and
 *    ends up mode 0600, keeping its owner when we are allowed to. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "auth/passwd.h"
#include "cli_opt.h"
#include "commands.h"
#include "common/moat_common.h"

#define usage_error(...) cli_opt_usage("passwd", __VA_ARGS__)

#define PW_MAX 65535 /* an MQTT password is binary data of this size */
/* The edited file may be a little larger than what we read. */
#define OUT_MAX (MOAT_PWFILE_MAX_BYTES + 2 * (size_t)PW_MAX)

struct pw_cmd {
	bool create;	 /* -c */
	bool del;	 /* -D */
	bool from_stdin; /* --stdin */
	const char *file;
	const char *user;
	const char *pos[3]; /* the arguments */
	int npos;	    /* how many were given */
};

/* ---- command line ------------------------------------------------------- */

enum { PW_REFUSE_B = 1 };

#define F(field) offsetof(struct pw_cmd, field)

static const struct cli_opt options[] = {
	{'c', NULL, 0, CLI_OPT_FLAG, F(create), 0, 0, NULL,
	 "create FILE (overwrites an existing one; refuses if FILE is a "
	 "symlink)", 0},
	{'D', NULL, 0, CLI_OPT_FLAG, F(del), 0, 0, NULL,
	 "delete USER from FILE", 0},
	{0, "stdin", 0, CLI_OPT_FLAG, F(from_stdin), 0, 0, NULL,
	 "read the password from the first line of standard input instead "
	 "of prompting on the terminal", 0},
	{'b', NULL, 0, CLI_OPT_CALL, 0, 0, 0, NULL,
	 "refused: mosquitto_passwd's batch mode takes the password from the "
	 "command line", PW_REFUSE_B},
	{'h', "help", 0, CLI_OPT_HELP, 0, 0, 0, NULL, "show this help", 0},
};

static int on_call(void *cfg, const struct cli_opt *o, char *v,
		   struct cli_pos *p);
static int on_arg(void *cfg, char *a);

static const struct cli_cmd command = {
	.name = "passwd",
	.opts = options,
	.nopts = MOAT_ARRAY_LEN(options),
	.call = on_call,
	.arg = on_arg,
	.usage = moat_passwd_usage,
};

void moat_passwd_usage(FILE *f)
{
	fprintf(f,
		"Usage: moat passwd [-c] [--stdin] FILE USER     add or change "
		"USER's password\n"
		"       moat passwd -D FILE USER                 delete USER\n"
		"\n"
		"Manages a mosquitto-format password file (user:hash lines) "
		"for moatd.\n"
		"New passwords are hashed with argon2id; weak passwords are "
		"refused.\n"
		"\n");
	cli_opt_print(f, &command, 16);
	fprintf(f,
		"\n"
		"The password is never taken from the command line: it would "
		"be kept in\n"
		"shell history and be visible to other users in ps.  FILE is "
		"replaced\n"
		"atomically and left with mode 0600.\n"
		"\n"
		"Exit status: 0 success, 1 failure (weak password, passwords "
		"differ, I/O),\n"
		"2 usage error.\n");
}

static int fail(const char *what, const char *detail)
{
	fprintf(stderr, "moat passwd: %s%s%s\n", what, detail ? ": " : "",
		detail ? detail : "");
	return CLI_EXIT_FAIL;
}

static int refuse_argv_password(void)
{
	fputs("moat passwd: refusing a password on the command line: it "
	      "would be kept in\nshell history and be visible to other users "
	      "in ps.  Type it at the prompt,\nor pipe it in with --stdin "
	      "(e.g. from a password manager).\n",
	      stderr);
	return CLI_EXIT_USAGE;
}

static int on_call(void *cfg, const struct cli_opt *o, char *v,
		   struct cli_pos *p)
{
	(void)cfg;
	(void)o;
	(void)v;
	(void)p;
	return refuse_argv_password(); /* -b, the only one */
}

/* FILE, USER and (refused) PASSWORD; more are counted. */
static int on_arg(void *cfg, char *a)
{
	struct pw_cmd *o = cfg;
	if (o->npos < 3)
		o->pos[o->npos] = a;
	o->npos++;
	return CLI_CONTINUE;
}

static int check_combination(const struct pw_cmd *o, int npos)
{
	if (npos < 2)
		return usage_error("%s", "missing FILE or USER");
	if (npos == 3 && !o->del)
		return refuse_argv_password();
	if (npos > 2)
		return usage_error("%s", "too many arguments");
	if (o->create && o->del)
		return usage_error("%s", "-c and -D cannot be combined");
	if (o->del && o->from_stdin)
		return usage_error("%s", "-D takes no password (--stdin)");
	return CLI_CONTINUE;
}

/* argv[0] is "passwd".  CLI_CONTINUE, or an exit code. */
static int parse_args(struct pw_cmd *o, const struct cli_cmd *c, int argc,
		      char **argv)
{
	int rc = cli_opt_parse(c, argc, argv);
	if (rc != CLI_CONTINUE)
		return rc;
	rc = check_combination(o, o->npos);
	if (rc == CLI_CONTINUE) {
		o->file = o->pos[0];
		o->user = o->pos[1];
	}
	return rc;
}

/* A user name the broker can match and the ACL patterns can use. */
static int check_user(const char *u)
{
	size_t len = strlen(u);
	if (len == 0)
		return usage_error("%s", "the user name is empty");
	if (len > 65535)
		return usage_error("%s", "the user name is longer than 65535 "
					 "bytes");
	if (!moat_utf8_valid((const uint8_t *)u, len))
		return usage_error("%s", "the user name is not valid UTF-8");
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)u[i];
		/* C0, DEL and the C1 controls (U+0080..U+009F) */
		if (c < 0x20 || c == 0x7f ||
		    (c == 0xC2 && (unsigned char)u[i + 1] < 0xA0))
			return usage_error("%s", "the user name contains a "
						 "control character");
		if (c == ':')
			return usage_error("%s", "the user name must not "
						 "contain ':' (it ends the "
						 "name in the file)");
		if (c == '+' || c == '#' || c == '/')
			return usage_error(
				"%s", "the user name must not contain '+', "
				      "'#' or '/': they would break ACL "
				      "patterns (%u in a topic)");
	}
	return CLI_CONTINUE;
}

/* ---- reading the password ----------------------------------------------- */

/* One line from fd into buf (at most PW_MAX bytes, NUL-terminated),
 * without its "\n" or "\r\n" (an empty line is an empty password).
 * MOAT_OK; MOAT_ELIMIT when too long; MOAT_EINVAL on a NUL byte;
 * MOAT_ECLOSED at end of input before any byte; MOAT_EIO on a read
 * error. */
static int read_line(int fd, char *buf, size_t *len)
{
	size_t n = 0;
	for (;;) {
		char c;
		ssize_t r = read(fd, &c, 1); /* byte by byte: read no further */
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return MOAT_EIO;
		if (r == 0 && n == 0)
			return MOAT_ECLOSED;
		if (r == 0 || c == '\n')
			break;
		if (c == '\0')
			return MOAT_EINVAL;
		if (n == PW_MAX)
			return MOAT_ELIMIT;
		buf[n++] = c;
	}
	if (n > 0 && buf[n - 1] == '\r')
		n--;
	buf[n] = '\0';
	*len = n;
	return MOAT_OK;
}

static int read_error(int rc, const char *where)
{
	if (rc == MOAT_ELIMIT)
		return fail("password longer than 65535 bytes", NULL);
	if (rc == MOAT_EINVAL)
		return fail("the password contains a NUL byte", NULL);
	if (rc == MOAT_ECLOSED)
		return fail("no password", where);
	return fail("cannot read the password", strerror(errno));
}

/* The terminal's state while echo is off, for the signal handler. */
static struct termios tty_saved;
static volatile sig_atomic_t tty_fd = -1;

static void tty_restore(void)
{
	if (tty_fd >= 0)
		(void)tcsetattr(tty_fd, TCSANOW, &tty_saved);
}

/* Interrupted at the prompt: give the terminal its echo back first. */
static void tty_signal(int sig)
{
	tty_restore();
	signal(sig, SIG_DFL);
	raise(sig);
}

static void tty_signals(void (*handler)(int))
{
	static const int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = handler;
	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < MOAT_ARRAY_LEN(sigs); i++)
		(void)sigaction(sigs[i], &sa, NULL);
}

/* Prompt on the terminal with echo off; one line into buf.  Echo goes
 * off (dropping anything typed ahead) before the prompt shows, so that
 * nothing typed after it is echoed or lost. */
static int tty_prompt(int fd, const char *prompt, char *buf, size_t *len)
{
	struct termios noecho = tty_saved;
	noecho.c_lflag &= ~(tcflag_t)ECHO;
	tty_fd = fd;
	tty_signals(tty_signal);
	/* Ctrl-Z is ignored at the prompt: a suspended prompt would resume
	 * with echo on (the shell restores the terminal it saved). */
	(void)signal(SIGTSTP, SIG_IGN);
	int rc = MOAT_EIO;
	if (tcsetattr(fd, TCSAFLUSH, &noecho) == 0 &&
	    write(fd, prompt, strlen(prompt)) >= 0)
		rc = read_line(fd, buf, len);
	tty_restore();
	tty_fd = -1;
	tty_signals(SIG_DFL);
	(void)signal(SIGTSTP, SIG_DFL);
	(void)!write(fd, "\n", 1); /* the newline echo swallowed */
	return rc;
}

int cli_tty_secret(const char *prompt, char *buf, size_t *len)
{
	int fd = open("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return MOAT_EIO;
	int rc = MOAT_EIO;
	if (tcgetattr(fd, &tty_saved) == 0)
		rc = tty_prompt(fd, prompt, buf, len);
	close(fd);
	return rc;
}

/* Twice on /dev/tty; they must match.  buf and again hold PW_MAX + 1. */
static int read_password_tty(char *buf, char *again)
{
	if (!isatty(STDIN_FILENO))
		return usage_error("%s", "standard input is not a terminal; "
					 "use --stdin to read the password "
					 "from it");
	int fd = open("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return fail("cannot open /dev/tty (use --stdin)",
			    strerror(errno));
	size_t n1 = 0, n2 = 0;
	int rc = MOAT_EIO;
	if (tcgetattr(fd, &tty_saved) == 0) {
		rc = tty_prompt(fd, "Password: ", buf, &n1);
		if (rc == MOAT_OK)
			rc = tty_prompt(fd, "Reenter password: ", again, &n2);
	}
	close(fd);
	if (rc != MOAT_OK)
		return read_error(rc, "/dev/tty");
	if (n1 != n2 || CRYPTO_memcmp(buf, again, n1) != 0)
		return fail("the passwords do not match", NULL);
	return CLI_CONTINUE;
}

static int read_password(const struct pw_cmd *o, char *buf, char *again)
{
	if (!o->from_stdin)
		return read_password_tty(buf, again);
	size_t n;
	int rc = read_line(STDIN_FILENO, buf, &n);
	return rc == MOAT_OK ? CLI_CONTINUE : read_error(rc, "standard input");
}

/* ---- the file --------------------------------------------------------------- */

/* The current file (NULL text when absent and -c).  Symlinks are
 * refused: replacing one by a regular file would surprise, and following
 * it would write where the broker's check never looks. */
static int read_current(const struct pw_cmd *o, char **text, size_t *len,
			struct stat *st, bool *exists)
{
	char err[512];
	*text = NULL;
	*len = 0;
	*exists = lstat(o->file, st) == 0;
	if (!*exists && (errno != ENOENT || !o->create))
		return fail(o->file, errno == ENOENT
					     ? "no such file (-c creates it)"
					     : strerror(errno));
	if (*exists && S_ISLNK(st->st_mode))
		return fail(o->file, "is a symbolic link; refused (give the "
				     "path of the file itself)");
	if (*exists && !S_ISREG(st->st_mode))
		return fail(o->file, "not a regular file");
	if (!*exists || o->create)
		return CLI_CONTINUE;
	if (st->st_mode & (S_IROTH | S_IWOTH))
		fprintf(stderr, "moat passwd: note: %s is open to other "
				"users; it will be mode 0600\n",
			o->file);
	/* not private_file: the check above handled symlinks, and a file
	 * mosquitto_passwd left 0644 is exactly what we come to fix */
	if (moat_file_read(o->file, MOAT_PWFILE_MAX_BYTES, false, text, len,
			   err, sizeof(err)) != MOAT_OK)
		return fail(err, NULL);
	return CLI_CONTINUE;
}

/* Would the broker load text?  err names the file and line. */
static int check_parses(const char *text, size_t len, const char *name,
			const char *hint)
{
	struct moat_pwfile *pf = NULL;
	char err[512];
	if (moat_pwfile_parse(text, len, name, &pf, err, sizeof(err)) !=
	    MOAT_OK)
		return fail(err, hint);
	moat_pwfile_free(pf);
	return CLI_CONTINUE;
}

static bool line_is_user(const char *line, size_t n, const char *user)
{
	size_t ulen = strlen(user);
	return n > ulen && line[ulen] == ':' && memcmp(line, user, ulen) == 0;
}

static bool append(struct moat_buf *b, const char *s, size_t n)
{
	return moat_buf_append(b, s, n) == MOAT_OK;
}

/* Copy text into out line by line, replacing USER's line by newline (or
 * dropping it when newline is NULL); appends newline if USER had none.
 * Every other byte is kept.  *found tells whether USER was there. */
static int edit_lines(const char *text, size_t len, const char *user,
		      const char *newline, struct moat_buf *out, bool *found)
{
	const char *p = text, *end = text + len;
	bool ok = true;
	*found = false;
	while (p < end && ok) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *next = nl ? nl + 1 : end;
		size_t n = (size_t)((nl ? nl : end) - p);
		bool crlf = n > 0 && p[n - 1] == '\r';
		if (!line_is_user(p, n, user)) {
			ok = append(out, p, (size_t)(next - p));
		} else {
			*found = true; /* once: the file has no duplicates */
			if (newline)
				ok = append(out, newline, strlen(newline)) &&
				     append(out, crlf ? "\r\n" : "\n",
					    crlf ? 2 : 1);
		}
		p = next;
	}
	if (ok && newline && !*found) {
		if (moat_buf_used(out) && out->data[out->len - 1] != '\n')
			ok = append(out, "\n", 1);
		ok = ok && append(out, newline, strlen(newline)) &&
		     append(out, "\n", 1);
	}
	return ok ? MOAT_OK : MOAT_ENOMEM;
}

/* The directory part of path, for the temporary file and its fsync. */
static char *dir_of(const char *path)
{
	const char *slash = strrchr(path, '/');
	if (!slash)
		return moat_strdup(".");
	if (slash == path)
		return moat_strdup("/");
	return moat_strndup(path, (size_t)(slash - path));
}

static int write_all(int fd, const uint8_t *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Keep the owner of the file we replace (the broker's user), when we
 * may; root can, others can only keep their own. */
static void keep_owner(int fd, const struct stat *old, const char *path)
{
	if (old->st_uid == geteuid() && old->st_gid == getegid())
		return;
	if (fchown(fd, old->st_uid, old->st_gid) != 0)
		fprintf(stderr, "moat passwd: warning: %s now belongs to you, "
				"not to its previous owner (%s)\n",
			path, strerror(errno));
}

/* The new content lands in a temporary file created 0600 (O_EXCL) next to
 * path, reaches the disk, then takes path's name in one rename: a reader
 * (the broker reloading) sees the old file or the new one, never half. */
static int replace_file(const char *path, const struct moat_buf *b,
			const struct stat *old)
{
	size_t plen = strlen(path);
	char *tmp = moat_malloc(plen + 8);
	char *dir = dir_of(path);
	int rc = CLI_EXIT_FAIL, fd = -1;
	if (!tmp || !dir) {
		fail("out of memory", NULL);
		goto out;
	}
	memcpy(tmp, path, plen);
	memcpy(tmp + plen, ".XXXXXX", 8);
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0) {
		fail(dir, strerror(errno));
		goto out;
	}
	if (old)
		keep_owner(fd, old, path);
	if (fchmod(fd, 0600) != 0 ||
	    write_all(fd, b->data + b->off, moat_buf_used(b)) != 0 ||
	    fsync(fd) != 0) {
		fail(tmp, strerror(errno));
		goto out;
	}
	int c = close(fd);
	fd = -1;
	if (c != 0 || rename(tmp, path) != 0) {
		fail(path, strerror(errno));
		goto out;
	}
	tmp[0] = '\0'; /* renamed: nothing to remove */
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) { /* the rename itself must reach the disk too */
		(void)fsync(dfd);
		close(dfd);
	}
	rc = CLI_EXIT_OK;
out:
	if (fd >= 0)
		close(fd);
	if (tmp && tmp[0])
		(void)unlink(tmp);
	moat_free(tmp);
	moat_free(dir);
	return rc;
}

/* Edit (or create) the file with newline for USER (NULL: delete). */
static int update_file(const struct pw_cmd *o, const char *text, size_t len,
		       const struct stat *old, const char *newline)
{
	struct moat_buf out;
	bool found;
	moat_buf_init(&out, OUT_MAX);
	int rc = edit_lines(text ? text : "", len, o->user, newline, &out,
			    &found);
	if (rc != MOAT_OK) {
		rc = fail("out of memory", NULL);
	} else if (!newline && !found) {
		rc = fail(o->user, "no such user in the file");
	} else {
		/* never write what the broker would refuse */
		rc = check_parses((const char *)out.data + out.off,
				  moat_buf_used(&out), o->file,
				  "not written (bug?)");
		if (rc == CLI_CONTINUE)
			rc = replace_file(o->file, &out, old);
	}
	moat_buf_cleanup(&out);
	return rc;
}

/* ---- the command -------------------------------------------------------- */

/* "USER:HASH" for the password in pw (weak ones refused). */
static int make_line(const struct pw_cmd *o, const char *pw, char **line)
{
	char reason[256], hash[MOAT_PASSWD_HASH_MAX];
	if (moat_passwd_weak(o->user, pw, reason, sizeof(reason)))
		return fail("weak password", reason);
	if (moat_passwd_hash((const uint8_t *)pw, strlen(pw), hash,
			     sizeof(hash)) != MOAT_OK)
		return fail("cannot hash the password", NULL);
	size_t n = strlen(o->user) + 1 + strlen(hash) + 1;
	*line = moat_malloc(n);
	if (!*line)
		return fail("out of memory", NULL);
	snprintf(*line, n, "%s:%s", o->user, hash);
	return CLI_CONTINUE;
}

/* Read, check and hash the new password into *line. */
static int new_password_line(const struct pw_cmd *o, char **line)
{
	char *pw = moat_malloc(PW_MAX + 1), *again = moat_malloc(PW_MAX + 1);
	int rc = CLI_EXIT_FAIL;
	if (!pw || !again)
		fail("out of memory", NULL);
	else
		rc = read_password(o, pw, again);
	if (rc == CLI_CONTINUE)
		rc = make_line(o, pw, line);
	if (pw)
		OPENSSL_cleanse(pw, PW_MAX + 1);
	if (again)
		OPENSSL_cleanse(again, PW_MAX + 1);
	moat_free(pw);
	moat_free(again);
	return rc;
}

static int run(const struct pw_cmd *o)
{
	char *text = NULL, *line = NULL;
	size_t len = 0;
	struct stat st;
	bool exists;
	/* the file first: no point typing a password for a file we refuse */
	int rc = read_current(o, &text, &len, &st, &exists);
	if (rc == CLI_CONTINUE && text)
		rc = check_parses(text, len, o->file,
				  "fix or remove that line first");
	if (rc == CLI_CONTINUE && !o->del)
		rc = new_password_line(o, &line);
	if (rc == CLI_CONTINUE)
		rc = update_file(o, o->create ? NULL : text,
				 o->create ? 0 : len, exists ? &st : NULL,
				 line);
	moat_free(text);
	moat_free(line);
	return rc;
}

int moat_passwd_main(int argc, char **argv)
{
	struct pw_cmd o = {0};
	struct cli_cmd c = command;
	c.cfg = &o;
	int rc = parse_args(&o, &c, argc, argv);
	if (rc == CLI_CONTINUE)
		rc = check_user(o.user);
	if (rc == CLI_CONTINUE)
		rc = run(&o);
	return rc;
}
