import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  addressKey,
  addressKeyer,
  clientAddress,
  compileTrust,
  parseCidr,
  parseForwarded,
  parseIp,
  parseXForwardedFor,
  stripPort,
} from '../../src/adapters/client-address.js';
import { isConfigError } from '../../src/errors.js';

describe('parseIp', () => {
  it('maps IPv4 into ::ffff:0:0/96 and parses IPv6 forms', () => {
    expect([...parseIp('1.2.3.4')!]).toEqual([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 255, 255, 1, 2, 3, 4]);
    expect(parseIp('::ffff:1.2.3.4')).toEqual(parseIp('1.2.3.4'));
    expect(parseIp('::1')![15]).toBe(1);
    expect(parseIp('2001:db8::1')).toEqual(parseIp('2001:0db8:0:0:0:0:0:0001'));
    expect(parseIp('fe80::1%eth0')).toEqual(parseIp('fe80::1'));
  });
  it('rejects what is not an address', () => {
    for (const bad of [
      '',
      '1.2.3',
      '1.2.3.256',
      '01.2.3.4',
      'a.b.c.d',
      '1::2::3',
      '12345::',
      'unknown',
      '_hidden',
      '1:2:3:4:5:6:7:8:9',
    ]) {
      expect(parseIp(bad), bad).toBeUndefined();
    }
  });
  it('round-trips every IPv4 address through the mapped form', () => {
    fc.assert(
      fc.property(fc.ipV4(), (ip) => {
        const b = parseIp(ip)!;
        expect(`${b[12]}.${b[13]}.${b[14]}.${b[15]}`).toBe(ip);
      }),
    );
  });
  it('parses every IPv6 address fast-check generates, and its uncompressed form to the same bytes', () => {
    fc.assert(
      fc.property(fc.ipV6(), (ip) => {
        const b = parseIp(ip);
        expect(b).toBeInstanceOf(Uint8Array);
        const groups: string[] = [];
        for (let i = 0; i < 8; i++) groups.push(((b![2 * i]! << 8) | b![2 * i + 1]!).toString(16));
        expect(parseIp(groups.join(':'))).toEqual(b);
      }),
    );
  });
});

describe('stripPort', () => {
  it('removes ports and brackets but keeps bare IPv6 whole', () => {
    expect(stripPort(' 1.2.3.4:8080 ')).toBe('1.2.3.4');
    expect(stripPort('[2001:db8::1]:443')).toBe('2001:db8::1');
    expect(stripPort('[2001:db8::1]')).toBe('2001:db8::1');
    expect(stripPort('2001:db8::1')).toBe('2001:db8::1');
    expect(stripPort('1.2.3.4')).toBe('1.2.3.4');
  });
});

describe('parseXForwardedFor', () => {
  it('splits, trims and strips ports, left to right', () => {
    expect(parseXForwardedFor('203.0.113.7, 10.0.0.1:3000 ,[::1]:80,,')).toEqual([
      '203.0.113.7',
      '10.0.0.1',
      '::1',
    ]);
  });
});

describe('parseForwarded (RFC 7239)', () => {
  it('reads the for= node of every element, quoted IPv6 with port included', () => {
    expect(
      parseForwarded(
        'for=192.0.2.60;proto=http;by=203.0.113.43, For="[2001:db8:cafe::17]:4711", for=198.51.100.17:80',
      ),
    ).toEqual(['192.0.2.60', '2001:db8:cafe::17', '198.51.100.17']);
  });
  it('handles params in any order, quoted commas and semicolons, and elements without for', () => {
    expect(parseForwarded('proto=https;for="10.0.0.1";host="a,b;c", by=1.1.1.1, for=unknown')).toEqual([
      '10.0.0.1',
      'unknown',
      'unknown',
    ]);
    expect(parseForwarded('for=_hidden')).toEqual(['_hidden']);
    expect(parseForwarded('')).toEqual([]);
  });
  it('unescapes quoted-pairs', () => {
    expect(parseForwarded('for="\\[::1\\]:80"')).toEqual(['::1']);
  });
});

describe('compileTrust', () => {
  it('is undefined (trust none) for false, 0 and an empty list', () => {
    expect(compileTrust('t', false)).toBeUndefined();
    expect(compileTrust('t', undefined)).toBeUndefined();
    expect(compileTrust('t', 0)).toBeUndefined();
    expect(compileTrust('t', [])).toBeUndefined();
  });
  it('matches CIDRs across IPv4, mapped IPv4 and IPv6, and presets', () => {
    const t = compileTrust('t', ['10.0.0.0/8', '2001:db8::/32', 'loopback'])!;
    expect(t('10.1.2.3', 0)).toBe(true);
    expect(t('::ffff:10.1.2.3', 0)).toBe(true);
    expect(t('11.0.0.1', 0)).toBe(false);
    expect(t('2001:db8:ffff::1', 0)).toBe(true);
    expect(t('2001:db9::1', 0)).toBe(false);
    expect(t('127.0.0.1', 0)).toBe(true);
    expect(t('::1', 0)).toBe(true);
    expect(t('garbage', 0)).toBe(false);
    const s = compileTrust('t', '172.16.0.0/12, 192.168.1.1')!;
    expect(s('172.31.255.255', 0)).toBe(true);
    expect(s('172.32.0.0', 0)).toBe(false);
    expect(s('192.168.1.1', 0)).toBe(true);
    expect(s('192.168.1.2', 0)).toBe(false);
  });
  it('counts hops for a number', () => {
    const t = compileTrust('t', 2)!;
    expect([t('x', 0), t('x', 1), t('x', 2)]).toEqual([true, true, false]);
  });
  it('throws a ConfigError naming the option for a bad entry', () => {
    try {
      compileTrust('trustProxy', ['10.0.0.0/33']);
      expect.unreachable();
    } catch (err) {
      expect(isConfigError(err)).toBe(true);
      expect((err as Error).message).toContain('trustProxy');
    }
    expect(() => compileTrust('trustProxy', -1)).toThrow(/trustProxy/);
    expect(() => compileTrust('trustProxy', ['nonsense'])).toThrow(/trustProxy/);
  });
  it('puts IPv4 prefixes in the mapped range, so /0 is all IPv4 and no IPv6', () => {
    expect(parseCidr('0.0.0.0/0')!.bits).toBe(96);
    const t = compileTrust('t', ['0.0.0.0/0'])!;
    expect(t('8.8.8.8', 0)).toBe(true);
    expect(t('2001:db8::1', 0)).toBe(false);
  });
});

describe('clientAddress: the rightmost untrusted address', () => {
  const xff = (socket: string, header: string | undefined, trust: Parameters<typeof compileTrust>[1]) =>
    clientAddress(socket, header, 'x-forwarded-for', compileTrust('t', trust));

  it('ignores the header unless the socket peer is trusted', () => {
    expect(xff('203.0.113.9', '1.1.1.1', false)).toBe('203.0.113.9');
    expect(xff('203.0.113.9', '1.1.1.1', ['10.0.0.0/8'])).toBe('203.0.113.9');
  });
  it('takes the first untrusted address from the right, not the leftmost (spoofable) one', () => {
    // The client sent "6.6.6.6" itself; the proxy appended the client's real address 198.51.100.2.
    expect(xff('10.0.0.5', '6.6.6.6, 198.51.100.2', ['10.0.0.0/8'])).toBe('198.51.100.2');
    expect(xff('10.0.0.5', '6.6.6.6, 198.51.100.2, 10.0.0.9', ['10.0.0.0/8'])).toBe('198.51.100.2');
  });
  it('with a hop count, trusts exactly that many proxies', () => {
    expect(xff('10.0.0.5', '6.6.6.6, 198.51.100.2', 1)).toBe('198.51.100.2');
    expect(xff('10.0.0.5', '6.6.6.6, 198.51.100.2, 10.0.0.9', 2)).toBe('198.51.100.2');
    expect(xff('10.0.0.5', '198.51.100.2', 5)).toBe('198.51.100.2');
  });
  it('falls back to the socket address without a header, and to the leftmost when all are trusted', () => {
    expect(xff('10.0.0.5', undefined, 1)).toBe('10.0.0.5');
    expect(xff('10.0.0.5', '10.0.0.1, 10.0.0.2', ['10.0.0.0/8'])).toBe('10.0.0.1');
    expect(xff('10.0.0.5', '6.6.6.6', true)).toBe('6.6.6.6');
  });
  it('reads Forwarded when told to', () => {
    const t = compileTrust('t', ['loopback'])!;
    expect(clientAddress('127.0.0.1', 'for=6.6.6.6, for="[2001:db8::7]:1234"', 'forwarded', t)).toBe(
      '2001:db8::7',
    );
  });
  it('passes hop numbers to a function', () => {
    const seen: Array<[string, number]> = [];
    const t = (a: string, hop: number) => {
      seen.push([a, hop]);
      return a.startsWith('10.');
    };
    expect(clientAddress('10.0.0.1', '5.5.5.5, 10.0.0.2', 'x-forwarded-for', t)).toBe('5.5.5.5');
    expect(seen).toEqual([
      ['10.0.0.1', 0],
      ['10.0.0.2', 1],
      ['5.5.5.5', 2],
    ]);
  });
  it('never returns an address left of the first untrusted hop (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.ipV4(), { maxLength: 6 }), fc.integer({ min: 0, max: 8 }), (chain, n) => {
        const got = xff('10.0.0.1', chain.join(', '), n);
        // hop i (0 = socket) is trusted when i < n, so the answer is hop n or the leftmost
        const hops = ['10.0.0.1', ...[...chain].reverse()];
        expect(got).toBe(hops[Math.min(n, hops.length - 1)]);
      }),
    );
  });
});

describe('addressKey', () => {
  it('keeps IPv4, unmaps mapped IPv4, and cuts IPv6 to its prefix', () => {
    expect(addressKey('1.2.3.4', 56)).toBe('1.2.3.4');
    expect(addressKey('::ffff:127.0.0.1', 56)).toBe('127.0.0.1');
    expect(addressKey('2001:db8:1234:5678:9abc::1', 56)).toBe('2001:db8:1234:5600::/56');
    expect(addressKey('2001:db8:1234:5678:9abc::1', 64)).toBe('2001:db8:1234:5678::/64');
    expect(addressKey('2001:DB8::1', 128)).toBe('2001:db8::1');
    expect(addressKey('::1', 56)).toBe('::/56');
    expect(addressKey('unknown', 56)).toBe('unknown');
  });
  it('gives every address of one /56 the same key', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0xff }), fc.integer({ min: 0, max: 0xffff }), (a, b) => {
        const ip = `2001:db8:1:2${a.toString(16).padStart(2, '0')}:${b.toString(16)}::9`;
        expect(addressKey(ip, 56)).toBe('2001:db8:1:200::/56');
      }),
    );
  });
  it('unmaps any IPv4-mapped form as parsing does (the canonical one without parsing)', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 255 }), { minLength: 4, maxLength: 4 }), (o) => {
        const v4 = o.join('.');
        expect(addressKey(`::ffff:${v4}`, 56)).toBe(v4);
        expect(addressKey(`::FFFF:${v4}`, 56)).toBe(v4);
        expect(addressKey(`0:0:0:0:0:ffff:${v4}`, 56)).toBe(v4);
      }),
    );
    // Not canonical IPv4 after the prefix: parsed (and refused) as before.
    expect(addressKey('::ffff:127.000.0.1', 56)).toBe('::ffff:127.000.0.1');
    expect(addressKey('::ffff:1.2.3', 56)).toBe('::ffff:1.2.3');
    expect(addressKey('::ffff:7f00:1', 56)).toBe('127.0.0.1');
  });
});

describe('addressKeyer', () => {
  it('answers as addressKey, remembering at most `size` IPv6 keys', () => {
    const key = addressKeyer(56, 3);
    const addresses = [
      '1.2.3.4',
      '::ffff:10.0.0.1',
      '2001:db8:1:2::1',
      '2001:db8:1:2::1',
      '::1',
      'fe80::1',
      'x:y',
    ];
    for (const a of addresses) expect(key(a)).toBe(addressKey(a, 56));
    fc.assert(
      fc.property(fc.ipV6(), fc.integer({ min: 1, max: 128 }), (ip, subnet) => {
        const k = addressKeyer(subnet, 2);
        expect(k(ip)).toBe(addressKey(ip, subnet));
        expect(k(ip)).toBe(addressKey(ip, subnet));
      }),
    );
  });
});

describe('malformed and non-address forwarding entries are never believed', () => {
  const loopback = compileTrust('t', ['loopback'])!;
  it('parseForwarded refuses an unclosed quote, quotes inside tokens, pairs without = and text after a quote', () => {
    for (const bad of [
      'for="9.9.9.1',
      'for="9.9.9.1, for=203.0.113.5',
      'for=198.51.100.1;x="',
      'for=198.51.100.1;x=", for=203.0.113.5',
      'for=1.2.3.4"',
      'for=a"b"',
      'for',
      'for=1.2.3.4;proto',
      '=1.2.3.4',
      'for="1.2.3.4"x',
      'for="1.2.3.4\\',
      'for=1.2.3.4 5.6.7.8',
      'fo r=1.2.3.4',
    ]) {
      expect(parseForwarded(bad), bad).toBeUndefined();
    }
    expect(parseForwarded('for="1.2.3.4" ; proto=http , ,for=5.6.7.8')).toEqual(['1.2.3.4', '5.6.7.8']);
  });
  it('a client line with an unclosed quote cannot pick its key or a victim key: the socket peer is used and reported', () => {
    const seen: string[] = [];
    const report = (why: string) => seen.push(why);
    // Node joins the client's line and the proxy's appended line with ", ".
    expect(clientAddress('127.0.0.1', 'for="9.9.9.1, for=203.0.113.5', 'forwarded', loopback, report)).toBe(
      '127.0.0.1',
    );
    expect(
      clientAddress('127.0.0.1', 'for=198.51.100.1;x=", for=203.0.113.5', 'forwarded', loopback, report),
    ).toBe('127.0.0.1');
    expect(seen).toEqual(['malformed', 'malformed']);
    // Well formed, the proxy's entry wins as before and nothing is reported.
    expect(clientAddress('127.0.0.1', 'for=9.9.9.1, for=203.0.113.5', 'forwarded', loopback, report)).toBe(
      '203.0.113.5',
    );
    expect(seen).toHaveLength(2);
  });
  it('an entry that is not an IP address never becomes the answer: the trusted hop that wrote it does', () => {
    const seen: string[] = [];
    const report = (why: string) => seen.push(why);
    expect(clientAddress('127.0.0.1', 'for=unknown', 'forwarded', loopback, report)).toBe('127.0.0.1');
    expect(clientAddress('127.0.0.1', 'for=_hidden, for=127.0.0.2', 'forwarded', loopback, report)).toBe(
      '127.0.0.2',
    );
    expect(
      clientAddress('10.0.0.5', 'victim-key, 198.51.100.2', 'x-forwarded-for', compileTrust('t', 2), report),
    ).toBe('198.51.100.2');
    expect(clientAddress('10.0.0.5', 'any-key-i-like', 'x-forwarded-for', compileTrust('t', 1), report)).toBe(
      '10.0.0.5',
    );
    expect(clientAddress('10.0.0.5', '1.2.3.4;x', 'x-forwarded-for', () => true, report)).toBe('10.0.0.5');
    expect(seen).toEqual(new Array(5).fill('not-an-address'));
  });
  it('whatever the header, the answer is the socket peer or an IP address from the chain (property)', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 40 }), fc.integer({ min: 1, max: 5 }), (header, n) => {
        for (const kind of ['forwarded', 'x-forwarded-for'] as const) {
          const got = clientAddress('10.0.0.1', header, kind, compileTrust('t', n));
          expect(got === '10.0.0.1' || parseIp(got) !== undefined).toBe(true);
        }
      }),
    );
  });
});
