"""Vectors for test/unit/util_snappy_test.c: snappy blocks made by python3-snappy (Google's C++
snappy) and mutations of them, each with the verdict of a port of Go's snappy.Decode (the
decoder influxd runs), one per line: "VERDICT DECODED_LEN HEX" (VERDICT 1 = valid).

Run by the unit test through popen(); a missing python3-snappy fails it (scripts/setup.sh
installs it)."""

import random
import sys

import snappy


def uvarint(b):
    """Go's binary.Uvarint: (value, bytes used), used <= 0 when truncated or overflowing."""
    x, s = 0, 0
    for i, c in enumerate(b):
        if i == 10:
            return 0, -(i + 1)
        if c < 0x80:
            if i == 9 and c > 1:
                return 0, -(i + 1)
            return x | c << s, i + 1
        x |= (c & 0x7F) << s
        s += 7
    return 0, 0


def go_decode(src):
    """Port of golang/snappy Decode (decode_other.go): the decoded bytes, or None. A declared
    length above 64 MiB is checked without building the output (b"" when valid)."""
    dlen, s = uvarint(src)
    if s <= 0 or dlen > 0xFFFFFFFF:
        return None
    dst = bytearray(dlen) if dlen <= 64 << 20 else None
    d = 0
    while s < len(src):
        tag = src[s]
        kind = tag & 3
        if kind == 0:
            x = tag >> 2
            if x < 60:
                s += 1
            else:
                nb = x - 59
                s += 1 + nb
                if s > len(src):
                    return None
                x = int.from_bytes(src[s - nb:s], "little")
            length = x + 1
            if length > dlen - d or length > len(src) - s:
                return None
            if dst is not None:
                dst[d:d + length] = src[s:s + length]
            d += length
            s += length
            continue
        if kind == 1:
            s += 2
            if s > len(src):
                return None
            length = 4 + (src[s - 2] >> 2 & 7)
            offset = (src[s - 2] & 0xE0) << 3 | src[s - 1]
        elif kind == 2:
            s += 3
            if s > len(src):
                return None
            length = 1 + (src[s - 3] >> 2)
            offset = int.from_bytes(src[s - 2:s], "little")
        else:
            s += 5
            if s > len(src):
                return None
            length = 1 + (src[s - 5] >> 2)
            offset = int.from_bytes(src[s - 4:s], "little")
        if offset <= 0 or d < offset or length > dlen - d:
            return None
        if dst is None:
            d += length
            continue
        for _ in range(length):
            dst[d] = dst[d - offset]
            d += 1
    if d != dlen:
        return None
    return bytes(dst) if dst is not None else b""


def emit(block, out):
    dec = go_decode(block)
    dlen = uvarint(block)[0] if dec is not None else 0
    out.write("%d %d %s\n" % (dec is not None, dlen, block.hex()))


def literal(data):
    """A literal element for data (1 to 2^32 bytes), with the shortest tag."""
    n = len(data) - 1
    if n < 60:
        return bytes([n << 2]) + data
    nb = (n.bit_length() + 7) // 8
    return bytes([(59 + nb) << 2]) + n.to_bytes(nb, "little") + data


def varint(v):
    out = bytearray()
    while v >= 0x80:
        out.append(v & 0x7F | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def handmade():
    yield b""                                   # no header
    yield b"\x00"                               # empty block: valid
    yield b"\x80"                               # truncated header
    yield b"\x80\x00"                           # non-minimal zero: valid for Go
    yield b"\x80\x80\x80\x80\x80\x80\x80\x80\x80\x00"      # 10 bytes, value 0: valid
    yield b"\x80\x80\x80\x80\x80\x80\x80\x80\x80\x01"      # 2^63: too large
    yield b"\x80\x80\x80\x80\x80\x80\x80\x80\x80\x02"      # overflow
    yield b"\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x00"  # 11 bytes: overflow
    yield b"\xff\xff\xff\xff\x0f"               # 0xffffffff, nothing decoded
    yield b"\x80\x80\x80\x80\x10"               # 0x100000000: too large
    yield b"\x01\x00a"                          # one literal byte
    yield b"\x01\x00"                           # literal longer than the input
    yield b"\x00\x00a"                          # literal longer than the output
    yield b"\x02\x00a"                          # output short
    for n in (1, 59, 60, 61, 255, 256, 257, 65535, 65536, 65537, 70000):
        data = bytes(random.getrandbits(8) for _ in range(n))
        yield varint(n) + literal(data)
        yield varint(n) + literal(data)[:-1]    # input short by one
        yield varint(n + 1) + literal(data)     # output not reached
    for tag in (0xF0, 0xF4, 0xF8, 0xFC):       # literal with 1-4 length bytes, all missing
        yield b"\x05" + bytes([tag])
    yield b"\x05\xf8\x04\x00"                   # 3-byte length 5, no data
    # copies: 1-byte offset (copy1), 2-byte (copy2), 4-byte (copy4)
    yield b"\x09" + literal(b"a") + bytes([0x01 | 4 << 2, 0x01])      # copy1 off 1 len 8
    yield b"\x09" + literal(b"a") + bytes([0x01 | 4 << 2, 0x00])      # offset 0
    yield b"\x09" + literal(b"a") + bytes([0x01 | 4 << 2, 0x02])      # offset beyond output
    yield b"\x09" + literal(b"a") + bytes([0x01 | 4 << 2])            # copy1 truncated
    yield b"\x08" + literal(b"a") + bytes([0x01 | 4 << 2, 0x01])      # copy past the end
    yield b"\x41" + literal(b"a") + bytes([0x02 | 63 << 2, 1, 0])     # copy2 off 1 len 64
    yield b"\x41" + literal(b"a") + bytes([0x02 | 63 << 2, 1])        # copy2 truncated
    yield b"\x41" + literal(b"a") + bytes([0x03 | 63 << 2, 1, 0, 0, 0])   # copy4 off 1 len 64
    yield b"\x41" + literal(b"a") + bytes([0x03 | 63 << 2, 1, 0, 0])      # copy4 truncated
    yield b"\x41" + literal(b"a") + bytes([0x03 | 63 << 2, 0, 0, 0, 0])   # copy4 offset 0
    yield b"\x41" + literal(b"a") + bytes([0x03 | 63 << 2, 2, 0, 0, 0])   # copy4 too far
    big = bytes(random.getrandbits(8) for _ in range(70000))
    yield varint(70064) + literal(big) + bytes([0x03 | 63 << 2]) + (70000).to_bytes(4, "little")
    yield varint(70064) + literal(big) + bytes([0x03 | 63 << 2]) + (70001).to_bytes(4, "little")
    yield varint(70064) + literal(big) + bytes([0x02 | 63 << 2]) + (65535).to_bytes(2, "little")
    yield varint(2) + literal(b"ab") + b"\x00"  # trailing bytes read as a tag


def inputs():
    yield b""
    yield b"a"
    yield b"hello hello hello hello"
    yield b"cpu,host=server01,region=uswest value=0.64 1434055562000000000\n" * 300
    yield bytes(random.getrandbits(8) for _ in range(5000))
    yield bytes(range(256)) * 600                       # > 64 KiB: several fragments
    yield b"".join(b"m%d,t=%d f=%di\n" % (i % 7, i % 13, i) for i in range(20000))
    yield bytes(random.choice(b"ab") for _ in range(100000))


def main():
    random.seed(15)
    out = sys.stdout
    for x in inputs():
        block = snappy.compress(x)
        if go_decode(block) != x or snappy.uncompress(block) != x:
            sys.exit("python3-snappy and the Go port disagree on a block they made")
        emit(block, out)
        for cut in sorted(set([0, 1, 2, len(block) // 2, len(block) - 1] +
                              [random.randrange(len(block)) for _ in range(20)])):
            emit(block[:cut], out)
        for _ in range(200 if len(block) < 2000 else 40):
            b = bytearray(block)
            i = random.randrange(len(b))
            b[i] = random.getrandbits(8)
            emit(bytes(b), out)
        emit(block + b"\x00", out)
        emit(block + b"\x04x", out)
    for block in handmade():
        emit(block, out)


if __name__ == "__main__":
    main()
