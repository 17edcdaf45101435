/* Dropping root after start-up (docs/install.md#privilege-drop). */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runas.h"

#define DEFAULT_USER "moat"
#define FALLBACK_USER "nobody"

/* getpwnam_r into ra; 1 found, 0 no such user, -1 lookup error. */
static int lookup(const char *name, struct moatd_runas *ra)
{
	struct passwd pw, *res = NULL;
	char buf[4096];
	int e = getpwnam_r(name, &pw, buf, sizeof(buf), &res);
	if (e != 0 && e != ENOENT && e != ESRCH)
		return -1;
	if (!res)
		return 0;
	ra->uid = pw.pw_uid;
	ra->gid = pw.pw_gid;
	snprintf(ra->name, sizeof(ra->name), "%s", name);
	return 1;
}

int moatd_runas_resolve(const struct moat_config *cfg, struct moatd_runas *ra,
			char *err, size_t errsz)
{
	memset(ra, 0, sizeof(*ra));
	if (geteuid() != 0)
		return MOAT_OK;
	const char *name = cfg->user[0] ? cfg->user : DEFAULT_USER;
	if (strcmp(name, "root") == 0) {
		ra->as_root = true;
		snprintf(ra->name, sizeof(ra->name), "root");
		return MOAT_OK;
	}
	int found = lookup(name, ra);
	if (found == 0 && strcmp(name, DEFAULT_USER) == 0) {
		found = lookup(FALLBACK_USER, ra);
		if (found == 1)
			moat_warn("user: there is no user '%s'; running as "
				  "'%s' instead (create '%s' or set 'user' "
				  "in the configuration)",
				  DEFAULT_USER, FALLBACK_USER, DEFAULT_USER);
	}
	if (found < 0) {
		snprintf(err, errsz, "user: cannot look up '%s': %s", name,
			 strerror(errno));
		return MOAT_EINVAL;
	}
	if (found == 0) {
		snprintf(err, errsz, "user: there is no user '%s' to run as "
			 "(started as root; 'user root' keeps root)", name);
		return MOAT_EINVAL;
	}
	if (ra->uid == 0) {
		/* Another name for uid 0 is root too: only "user root"
		 * may say that. */
		snprintf(err, errsz, "user: '%s' has uid 0; write 'user root' "
			 "to run as root", name);
		return MOAT_EINVAL;
	}
	ra->drop = true;
	return MOAT_OK;
}

int moatd_runas_drop(const struct moatd_runas *ra, char *err, size_t errsz)
{
	if (!ra->drop)
		return MOAT_OK;
	/* Groups first: once the uid is gone, so is the right to change
	 * them. */
	if (setgroups(0, NULL) != 0 || setgid(ra->gid) != 0 ||
	    setuid(ra->uid) != 0) {
		snprintf(err, errsz, "cannot drop root to user '%s' (uid %u, "
			 "gid %u): %s", ra->name, (unsigned)ra->uid,
			 (unsigned)ra->gid, strerror(errno));
		return MOAT_EDENIED;
	}
	gid_t groups[1];
	if (getuid() != ra->uid || geteuid() != ra->uid ||
	    getgid() != ra->gid || getegid() != ra->gid ||
	    getgroups(1, groups) != 0 || setuid(0) == 0) {
		snprintf(err, errsz, "dropping root to user '%s' did not "
			 "hold", ra->name);
		return MOAT_EDENIED;
	}
	moat_notice("running as user %s (uid %u, gid %u)", ra->name,
		    (unsigned)ra->uid, (unsigned)ra->gid);
	return MOAT_OK;
}

/* fchown path to ra's user when it is a root-owned file or directory
 * (never following a symbolic link); anything else is left alone. */
static void own_if_root(const char *path, const struct moatd_runas *ra)
{
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	struct stat st;
	if (fd < 0)
		return;
	if (fstat(fd, &st) == 0 && st.st_uid == 0 &&
	    (S_ISREG(st.st_mode) || S_ISDIR(st.st_mode)) &&
	    fchown(fd, ra->uid, ra->gid) != 0)
		moat_warn("user: cannot give %s to %s: %s", path, ra->name,
			  strerror(errno));
	close(fd);
}

void moatd_runas_own_store(const struct moat_config *cfg,
			   const struct moatd_runas *ra)
{
	static const char *const files[] = {"moat.db", "moat.db-wal",
					    "moat.db-shm", "moat.db-journal"};
	const char *dir = cfg->persistence_location;
	struct stat st;
	if (!ra->drop || !cfg->persistence)
		return;
	/* A directory made here is the broker's; an existing one is
	 * given away only by its owner (the package does that), never
	 * by us: it could be /var/lib. */
	if (mkdir(dir, 0700) == 0)
		own_if_root(dir, ra);
	if (lstat(dir, &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != ra->uid)
		return;
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		char path[MOAT_CFG_PATH_MAX + 32];
		snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
		own_if_root(path, ra);
	}
}
