/* Device console commands (Tasmota; ESPHome and Shelly speak JSON or
 * key=value, which the field rules read): "MqttPassword s3cret",
 * "Backlog SSId1 HomeNet; Password1 hunter22", also inside a JSON string
 * ({"cmnd":"..."}).  A command name starts a command: at the start of the
 * data, a line, a JSON string, after ';' or after "Backlog". */
#include <string.h>

#include "leak/leak_int.h"

static bool cmd_start(const uint8_t *d, size_t s)
{
	size_t k = s;
	while (k > 0 && s - k < 4 && d[k - 1] == ' ')
		k--;
	if (k == 0)
		return true;
	uint8_t b = d[k - 1];
	if (b == ';' || b == '"' || b == '\n' || b == '\r')
		return true;
	if (k >= 2 && d[k - 2] == '\\' && (b == 'n' || b == 'r'))
		return true;
	/* "Backlog " before the first command of a list */
	if (k != s && k >= 7) {
		static const char bl[] = "backlog";
		for (size_t i = 0; i < 7; i++)
			if (lk_tolower(d[k - 7 + i]) != (uint8_t)bl[i])
				return false;
		return k == 7 || !lk_alnum(d[k - 8]);
	}
	return false;
}

/* The match ends after "<command> " (caseless): MqttPassword,
 * WebPassword, Password1..4 (Tasmota's Wi-Fi passwords). */
void moat__leak_x_console(struct lk_scan *sc, unsigned rule, size_t end)
{
	const uint8_t *d = sc->d;
	if (end <= sc->tok_end[rule])
		return;
	size_t s = end - 1;
	while (s > 0 && lk_alnum(d[s - 1]))
		s--;
	if (!cmd_start(d, s))
		return;
	bool wifi = lk_digit(d[end - 2]); /* Password1 */
	size_t v = end;
	while (v < sc->n && d[v] == ' ')
		v++;
	size_t e = v;
	while (e < sc->n && e - v < 128 && d[e] != ';' && d[e] != '\n' &&
	       d[e] != '\r' && d[e] != '"' && d[e] != '\\')
		e++;
	sc->tok_end[rule] = e;
	while (e > v && d[e - 1] == ' ')
		e--;
	/* "0" clears, "1" restores the firmware default */
	if (e == v || (e - v == 1 && (d[v] == '0' || d[v] == '1')) ||
	    moat__leak_placeholder(d + v, e - v))
		return;
	enum moat_leak_category cat = wifi ? MOAT_LEAK_WIFI_CREDENTIALS
					   : MOAT_LEAK_CREDENTIAL;
	uint32_t fl = MOAT_LEAK_F_CONTEXT;
	if (moat__leak_weak_password(d + v, e - v))
		fl |= MOAT_LEAK_F_WEAK_PASSWORD;
	struct lk_cand *c = moat__leak_add(sc, cat, v, e, MOAT_LEAK_SEV_HIGH,
					   95, fl);
	if (c)
		moat__leak_prev_fmt(c, "%s **** (%zu chars)",
				    wifi ? "wifi" : "command", e - v);
}
