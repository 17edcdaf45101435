#include <stddef.h>

#include "moat/errors.h"

struct err_entry {
	int code;
	const char *name;
	const char *text;
};

static const struct err_entry err_table[] = {
	{MOAT_OK, "MOAT_OK", "success"},
	{MOAT_ENOMEM, "MOAT_ENOMEM", "out of memory"},
	{MOAT_EINVAL, "MOAT_EINVAL", "invalid argument"},
	{MOAT_EMALFORMED, "MOAT_EMALFORMED", "malformed packet"},
	{MOAT_EPROTO, "MOAT_EPROTO", "protocol error"},
	{MOAT_ELIMIT, "MOAT_ELIMIT", "limit exceeded"},
	{MOAT_EDENIED, "MOAT_EDENIED", "not authorised"},
	{MOAT_EIO, "MOAT_EIO", "I/O error"},
	{MOAT_ETLS, "MOAT_ETLS", "TLS error"},
	{MOAT_EAGAIN, "MOAT_EAGAIN", "try again"},
	{MOAT_DECLINED, "MOAT_DECLINED", "declined"},
	{MOAT_ECLOSED, "MOAT_ECLOSED", "connection closed"},
	{MOAT_ENOTFOUND, "MOAT_ENOTFOUND", "not found"},
	{MOAT_EUTF8, "MOAT_EUTF8", "invalid UTF-8"},
};

static const struct err_entry *find(int err)
{
	for (size_t i = 0; i < sizeof(err_table) / sizeof(err_table[0]); i++)
		if (err_table[i].code == err)
			return &err_table[i];
	return 0;
}

const char *moat_strerror(int err)
{
	const struct err_entry *e = find(err);
	return e ? e->text : "unknown error";
}

const char *moat_err_name(int err)
{
	const struct err_entry *e = find(err);
	return e ? e->name : "MOAT_E?";
}
