/* Reading the files that hold secrets or policy (password file, ACL file,
 * private keys): refused when they are symlinks, writable by their group,
 * or readable or writable by other users, and read whole with a size
 * bound. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "moat_common.h"

static int symlink_refused(const char *path, char *err, size_t errsz)
{
	snprintf(err, errsz,
		 "%s: is a symbolic link; refused for a file holding secrets "
		 "or policy (point the directive at the file itself)",
		 path);
	return MOAT_EDENIED;
}

/* The checks on what lstat or fstat said about path. */
static int check_mode(const char *path, const struct stat *sp, char *err,
		      size_t errsz)
{
	struct stat st = *sp;
	if (S_ISLNK(st.st_mode))
		return symlink_refused(path, err, errsz);
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, errsz, "%s: not a regular file", path);
		return MOAT_EIO;
	}
	if (st.st_mode & S_IWGRP) {
		snprintf(err, errsz,
			 "%s: writable by its group (mode %04o): any member "
			 "could add users or rights; refused: chmod g-w %s",
			 path, (unsigned)(st.st_mode & 07777), path);
		return MOAT_EDENIED;
	}
	if (st.st_mode & (S_IROTH | S_IWOTH)) {
		snprintf(err, errsz,
			 "%s: readable or writable by other users (mode %04o); "
			 "refused: chmod o-rwx %s",
			 path, (unsigned)(st.st_mode & 07777), path);
		return MOAT_EDENIED;
	}
	return MOAT_OK;
}

int moat_file_check_private(const char *path, char *err, size_t errsz)
{
	struct stat st;
	if (lstat(path, &st) != 0) {
		snprintf(err, errsz, "%s: %s", path, strerror(errno));
		return MOAT_EIO;
	}
	return check_mode(path, &st, err, errsz);
}

int moat_file_read(const char *path, size_t max, bool private_file,
		   char **out, size_t *len, char *err, size_t errsz)
{
	*out = NULL;
	*len = 0;
	/* The checks apply to the file actually opened (fstat), not to what
	 * the path named a moment before. */
	/* O_NONBLOCK: a FIFO in its place must not hang the open. */
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0 && errno == ELOOP && private_file)
		return symlink_refused(path, err, errsz);
	if (fd < 0) {
		snprintf(err, errsz, "%s: %s", path, strerror(errno));
		return MOAT_EIO;
	}
	struct stat st;
	int rc = fstat(fd, &st) != 0 ? MOAT_EIO : MOAT_OK;
	if (rc)
		snprintf(err, errsz, "%s: %s", path, strerror(errno));
	else if (private_file)
		rc = check_mode(path, &st, err, errsz);
	else if (!S_ISREG(st.st_mode)) {
		snprintf(err, errsz, "%s: not a regular file", path);
		rc = MOAT_EIO;
	}
	if (rc) {
		close(fd);
		return rc;
	}
	if ((uint64_t)st.st_size > max) {
		snprintf(err, errsz, "%s: larger than %zu bytes", path, max);
		close(fd);
		return MOAT_ELIMIT;
	}
	/* One spare byte beyond the NUL tells a file that grew meanwhile. */
	size_t cap = (size_t)st.st_size + 2, n = 0;
	char *buf = moat_malloc(cap);
	if (!buf) {
		close(fd);
		snprintf(err, errsz, "%s: out of memory", path);
		return MOAT_ENOMEM;
	}
	for (;;) {
		if (n + 1 >= cap) { /* the file grew while we read it */
			snprintf(err, errsz, "%s: changed while being read",
				 path);
			moat_free(buf);
			close(fd);
			return MOAT_EIO;
		}
		ssize_t r = read(fd, buf + n, cap - 1 - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			snprintf(err, errsz, "%s: %s", path, strerror(errno));
			moat_free(buf);
			close(fd);
			return MOAT_EIO;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	buf[n] = '\0';
	*out = buf;
	*len = n;
	return MOAT_OK;
}
