#!/usr/bin/env python3
"""Write the seed corpus for fuzz_subject into corpus/subject/.

The first byte selects the property (see fuzz_subject.c): 0 topic,
1 subject, 2 "filter\\0topic", 3 token.
Re-run after changing the layout:  python3 tests/fuzz/gen_subject_corpus.py
"""
import os

TOPIC, SUBJECT, MATCH, TOKEN = range(4)

SEEDS = {
    'topic_plain': (TOPIC, b'sensors/t-1/temp_c'),
    'topic_special': (TOPIC, b'a.b/c*d/e>f/ s\t/=/$x'),
    'topic_empty_levels': (TOPIC, b'/a//'),
    'topic_dollar': (TOPIC, b'$SYS/broker/load'),
    'topic_utf8': (TOPIC, 'caf\u00e9/\u20ac/\U0001F600'.encode()),
    'subject_plain': (SUBJECT, b'm.t.a.b'),
    'subject_escapes': (SUBJECT, b'm.t.a=2Eb.=.=3D.=C3=A9'),
    'subject_dollar': (SUBJECT, b'm.d.=24SYS.x'),
    'subject_bad': (SUBJECT, b'm.t.=2F.=41.*'),
    'match_hash_parent': (MATCH, b'a/#\0a'),
    'match_plus': (MATCH, b'+/+/x\0a//x'),
    'match_dollar': (MATCH, b'#\0$SYS/x'),
    'match_literal': (MATCH, b'a.b/$c\0a.b/$c'),
    'token_share': (TOKEN, b'g=2F1'),
    'token_empty': (TOKEN, b'='),
}

here = os.path.dirname(os.path.abspath(__file__))
out = os.path.join(here, 'corpus', 'subject')
os.makedirs(out, exist_ok=True)
for name, (sel, body) in SEEDS.items():
    with open(os.path.join(out, name), 'wb') as f:
        f.write(bytes([sel]) + body)
