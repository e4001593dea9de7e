#!/usr/bin/env python3
"""Writes the committed seed corpora, fuzz/seeds/<target>/, from the tests' inputs.

Each seed is laid out as its target reads its input (see the target's source). Deterministic:
rerun after changing a target's layout, and commit what changes.
    python3 fuzz/seeds/generate.py
"""
import base64
import hashlib
import hmac
import json
import os
import shutil
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
NOW = 1_700_000_000
SECRET = b"fuzz-secret-fuzz-secret-fuzz-secret!"  # the validate target's HMAC key ("h")
ISS, AUD = "https://issuer.example", "api"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hs256(header: bytes, payload: bytes, secret: bytes = SECRET) -> str:
    message = f"{b64(header)}.{b64(payload)}"
    signature = hmac.new(secret, message.encode(), hashlib.sha256).digest()
    return f"{message}.{b64(signature)}"


def good_payload(**extra) -> bytes:
    claims = {"sub": "alice", "exp": NOW + 60, "iss": ISS, "aud": AUD}
    claims.update(extra)
    return json.dumps(claims, separators=(",", ":")).encode()


def write(target: str, seeds: list) -> None:
    directory = os.path.join(HERE, target)
    shutil.rmtree(directory, ignore_errors=True)
    os.makedirs(directory)
    for i, seed in enumerate(seeds):
        with open(os.path.join(directory, f"{i:03}"), "wb") as f:
            f.write(seed if isinstance(seed, bytes) else seed.encode())


HEADER = b'{"alg":"HS256","kid":"h","typ":"JWT"}'
VALID = hs256(HEADER, good_payload())

# The attack corpus's payloads (tests/attacks.rs), as raw JSON text.
PAYLOADS = [
    good_payload(),
    good_payload(nbf=NOW - 5, iat=NOW - 5, jti="j-1"),
    good_payload(aud=["x", AUD]),
    b'{"sub":"a","sub":"b","exp":%d,"iss":"%s","aud":"api"}' % (NOW + 60, ISS.encode()),
    b'{"sub":"a","exp":%d,"exp":%d,"iss":"%s","aud":"api"}' % (NOW + 60, NOW - 60, ISS.encode()),
    b'{"sub":"a","exp":"%d","iss":"%s","aud":"api"}' % (NOW + 60, ISS.encode()),
    b'{"sub":"a","exp":%d.5,"iss":"%s","aud":"api"}' % (NOW + 60, ISS.encode()),
    b'{"sub":"a","exp":1e400,"iss":"%s","aud":"api"}' % ISS.encode(),
    b'{"sub":"a","exp":-1,"iss":"%s","aud":"api"}' % ISS.encode(),
    b'{"sub":"a","exp":18446744073709551616,"iss":"%s","aud":"api"}' % ISS.encode(),
    b'{"sub":"a","exp":%d,"iss":"%s","aud":{"api":true}}' % (NOW + 60, ISS.encode()),
    b'{"sub":"a","exp":%d,"nbf":%d,"iss":"%s","aud":"api"}' % (NOW + 60, NOW + 600, ISS.encode()),
    b'{"sub":"\\u0061","exp":%d,"iss":"%s","aud":"api","x":"\xff"}' % (NOW + 60, ISS.encode()),
    b'{"sub":"a","iss":"%s","aud":"api"}' % ISS.encode(),
    b'[1,2,3]',
    b'{"sub":null,"exp":%d,"iss":"%s","aud":"api","nested":{"exp":1}}' % (NOW + 60, ISS.encode()),
]
HEADERS = [
    b'{"alg":"HS256"}',
    b'{"alg":"HS256","kid":"h"}',
    b'{"alg":"HS256","crit":["exp"]}',
    b'{"alg":"HS256","b64":false,"crit":["b64"]}',
    b'{"alg":"HS256","jwk":{"kty":"oct","k":"c2VjcmV0"}}',
    b'{"alg":"HS256","jku":"http://127.0.0.1:1/jwks","x5u":"http://127.0.0.1:1/x"}',
    b'{"alg":"HS256","alg":"none"}',
    b'{"alg":"none"}',
    b'{"alg":"nOnE"}',
    b'{"alg":"HS256","cty":"JWT"}',
    b'{"alg":"HS256","typ":"at+jwt","kid":"' + b"A" * 300 + b'"}',
    b'{"alg":"HS256","kid":"\' OR 1=1 --"}',
    b'{"alg":"HS256","kid":"../../../dev/null"}',
]


def validate_seeds() -> list:
    seeds = []
    # Mode 0: tokens as strings.
    none = b64(b'{"alg":"none"}') + "." + b64(good_payload()) + "."
    swapped = VALID.split(".")
    seeds += [b"\x00" + t.encode() for t in [
        VALID,
        none,
        f"{swapped[1]}.{swapped[0]}.{swapped[2]}",
        VALID + "=",
        VALID.replace("-", "+").replace("_", "/"),
        VALID.rsplit(".", 1)[0] + ".",
        json.dumps({"protected": swapped[0], "payload": swapped[1], "signature": swapped[2]}),
        VALID + "." + swapped[2],
        "a.b.c",
        "...",
    ]]
    # Mode 1: signer, alg, kid, typ, flags, mutation position (2), value, payload.
    for i, payload in enumerate(PAYLOADS):
        signer = i % 8
        seeds.append(bytes([1, signer, i % 12, i % 8, i % 6, 0, 0, 0, 0]) + payload)
    seeds.append(bytes([1, 0, 0, 1, 1, 1, 40, 0, ord("A")]) + PAYLOADS[0])
    seeds.append(bytes([1, 2, 0, 0, 0, 0, 0, 0, 0]) + PAYLOADS[0])  # RS256 public PEM as secret
    seeds.append(bytes([1, 6, 5, 2, 0, 0, 0, 0, 0]) + PAYLOADS[0])  # RSA, pre-signed
    # Mode 2: a fuzz-made header (HMAC), 0xff, the payload.
    for header in HEADERS:
        seeds.append(bytes([2, 0, 0, 0, 0, 0, 0, 0, 0]) + header + b"\xff" + PAYLOADS[0])
    # Mode 3: signer, exp offset (i16), nbf offset (i16), nbf present, subject.
    for signer, exp, nbf, has in [(0, 60, -5, 1), (1, -11, 0, 0), (2, 5, 11, 1), (0, -10, 0, 0)]:
        seeds.append(bytes([3, signer]) + struct.pack("<hh", exp, nbf) + bytes([has]) + b"alice")
    return seeds


PREFIX = "base64url.bearer.authorization.jwt."  # DEFAULT_WEBSOCKET_PROTOCOL_PREFIX


def protocol(token: str, prefix: str = PREFIX) -> bytes:
    return (prefix + b64(token.encode())).encode()


def extract_seeds() -> list:
    # flags (bit 0: upgrade, bit 1: the short prefix "t."), then records separated by 0xFF:
    # a kind (0 authorization, 1 x-auth-token, 2 cookie, 3 sec-websocket-protocol, 4 query)
    # and its value.
    def seed(flags: int, *records) -> bytes:
        return bytes([flags]) + b"\xff".join(bytes([k]) + v for k, v in records)

    t = VALID.encode()
    return [
        seed(0, (0, b"Bearer " + t)),
        seed(1, (0, b"bearer " + t), (1, t), (2, b"session=" + t), (4, b"token=" + t),
             (3, b"chat, " + protocol(VALID))),
        seed(0, (0, b"Bearer a.b.c"), (1, b"x.y.z")),
        seed(0, (0, b"Bearer a.b.c"), (0, b"Bearer a.b.c")),
        seed(0, (1, b"a.b.c"), (1, b"a.b.c")),
        seed(0, (2, b"other=1; session=a.b.c"), (2, b"session=a.b.d")),
        seed(0, (4, b"token=a%2Eb.c"), (4, b"token=a.b.c")),
        seed(0, (4, b"token=%ff%fe")),
        seed(1, (3, b"chat, " + protocol(VALID)), (3, protocol("x.y.z"))),
        seed(1, (3, protocol(VALID))),
        seed(3, (3, b"chat, " + protocol(VALID, "t."))),
        seed(0, (0, b"Basic dXNlcjpwYXNz")),
        seed(0, (0, b"Bearer " + b"A" * 600)),
        seed(0, (0, b"Bearer \xc3\xa9.b.c"), (2, b"session=\xe2\x82\xac")),
    ]


def client_ip_seeds() -> list:
    return [
        b"\x00\x01203.0.113.7, 10.0.0.2",
        b"\x01\x07198.51.100.1",
        b"\x04\x01for=203.0.113.9;proto=https, for=\"[2001:db8::1]:443\"",
        b"\x05\x02for=unknown, for=_hidden",
        b"\x08\x01203.0.113.5",
        b"\x02\x01fd00::1, 2001:db8::7",
        b"\x00\x01203.0.113.7\n10.0.0.9, 198.51.100.2",
        b"\x00\x01::ffff:203.0.113.7, 10.0.0.1:8080",
    ]


def subprotocol_seeds() -> list:
    # flags (bit 0: the short prefix "t."), then header lines.
    p = protocol(VALID)
    return [
        b"\x00" + p + b", chat",
        b"\x00chat, " + p,
        b"\x00" + p + b"\nchat\n" + p,
        b"\x00" + PREFIX.encode() + b"!!!, graphql-ws",
        b"\x00" + PREFIX.encode() + b64(b"\xff\xfe").encode() + b", chat",
        b"\x00" + p,
        b"\x00chat,, ,superchat\t",
        b"\x00" + b"x" * 70 + b", chat",
        b"\x01t." + b64(VALID.encode()).encode() + b", v12.stomp",
        b"\x01t.YQ, t",
        b"\x00chat, \xe9t\xe9",
    ]


def ws_messages_seeds() -> list:
    texts = [
        '{"type":"reauth","token":"a.b.c"}',
        '  {"token":"a.b.c", "type" : "reauth"}',
        '{"\\u0074ype":"reauth","t\\u006fken":"x.y.z"}',
        '{"type":"reauth","token":"a","token":"b"}',
        '{"type":"reauth","token":7}',
        '{"type":"reauth"}',
        '{"type":"chat","type":"reauth","token":"t"}',
        '{"type":"reauth","token":"t","n":1e400}',
        '["type","reauth"]',
        '{"type":"reauth","token":"t"} trailing',
        'hello',
        '{"type":"reauth","token":"\\ud800"}',
    ]
    seeds = [b"\x00" + t.encode() for t in texts]
    seeds += [b"\x01" + VALID.encode(), b"\x83tok\"en\xffextra", b"\x05\xff\xfftype"]
    return seeds


def grpc_metadata_seeds() -> list:
    seeds = []
    metadata = [
        b"content-type: application/grpc\nauthorization: Bearer " + VALID.encode(),
        b"content-type: application/grpc+proto\nte: trailers",
        b"content-type: Application/GRPC;charset=utf-8\nauthorization: bearer a.b.c\nauthorization: Bearer x.y.z",
        b"content-type: application/grpc-web\nx-bin: AAEC",
        b"content-type: application/json",
    ]
    # code, message, flags (bit 0: a retry time, bit 1: in seconds), the retry time (8 bytes),
    # then a free message up to 0xFE, then metadata lines.
    messages = [b"", "100% d\u00e9j\u00e0 vu\n".encode(), b"%41%%", b"\x00\x7f\r\n", "\U0001f642".encode()]
    for i, m in enumerate(metadata):
        retry = struct.pack("<Q", [0, 1, 999_999, 2**64 - 1, 30_000_000_000][i])
        seeds.append(bytes([i, i, i % 4]) + retry + messages[i] + b"\xfe" + m)
    return seeds


write("validate", validate_seeds())
write("extract", extract_seeds())
write("client_ip", client_ip_seeds())
write("subprotocol", subprotocol_seeds())
write("ws_messages", ws_messages_seeds())
write("grpc_metadata", grpc_metadata_seeds())
