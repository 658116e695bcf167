/**
 * Who sent a request: the socket's peer address, or, behind proxies the user names as trusted,
 * the rightmost address in `X-Forwarded-For` / `Forwarded` (RFC 7239) that no trusted proxy wrote.
 *
 * The chain is read right to left, starting from the socket's peer (hop 0). Each trusted hop
 * vouches for the entry to its left; the first untrusted address is the client. Leftmost entries
 * are whatever the client chose to send, so they are never believed unless every hop after them is
 * trusted. A client-supplied identity header is never used unless the user names it.
 *
 * Pure string and byte work: no I/O.
 */
import { ConfigError } from '../errors.js';
import { integer } from '../validate.js';

/**
 * Which proxies in front of the app to trust:
 * - `false` (default): none; the key is the socket's peer address and forwarding headers are ignored.
 * - a number n: the n hops nearest the app are proxies (the socket's peer and n − 1 more entries).
 * - addresses and CIDR ranges (an array, or a comma-separated string), plus the presets
 *   `loopback`, `linklocal` and `uniquelocal`: a hop is trusted when its address is in the list.
 * - a function `(address, hop) => boolean`, hop 0 being the socket's peer.
 * - `true`: every hop (the leftmost entry wins: only safe when the proxy strips client-sent headers).
 */
export type TrustProxy =
  | boolean
  | number
  | string
  | readonly string[]
  | ((address: string, hop: number) => boolean);

/** Which header carries the chain behind trusted proxies. */
export type ForwardedHeader = 'x-forwarded-for' | 'forwarded';

export type TrustFn = (address: string, hop: number) => boolean;

const PRESETS: Readonly<Record<string, readonly string[]>> = Object.freeze({
  loopback: ['127.0.0.0/8', '::1/128'],
  linklocal: ['169.254.0.0/16', 'fe80::/10'],
  uniquelocal: ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', 'fc00::/7'],
});

/** Parses an IPv4 or IPv6 address (zone ids dropped) to 16 bytes, IPv4 as `::ffff:a.b.c.d`. */
export function parseIp(text: string): Uint8Array | undefined {
  const s = text.includes('%') ? text.slice(0, text.indexOf('%')) : text;
  if (!s.includes(':')) {
    const v4 = parseIpv4(s);
    if (v4 === undefined) return undefined;
    const out = new Uint8Array(16);
    out[10] = 0xff;
    out[11] = 0xff;
    out.set(v4, 12);
    return out;
  }
  return parseIpv6(s);
}

function parseIpv4(s: string): number[] | undefined {
  const parts = s.split('.');
  if (parts.length !== 4) return undefined;
  const out: number[] = [];
  for (const p of parts) {
    if (!/^(0|[1-9]\d{0,2})$/.test(p)) return undefined;
    const n = Number(p);
    if (n > 255) return undefined;
    out.push(n);
  }
  return out;
}

function parseIpv6(s: string): Uint8Array | undefined {
  const halves = s.split('::');
  if (halves.length > 2) return undefined;
  const groups = (h: string): number[] | undefined => {
    if (h === '') return [];
    const out: number[] = [];
    const parts = h.split(':');
    for (let i = 0; i < parts.length; i++) {
      const p = parts[i]!;
      if (i === parts.length - 1 && p.includes('.')) {
        const v4 = parseIpv4(p);
        if (v4 === undefined) return undefined;
        out.push((v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!);
        continue;
      }
      if (!/^[0-9a-fA-F]{1,4}$/.test(p)) return undefined;
      out.push(Number.parseInt(p, 16));
    }
    return out;
  };
  const head = groups(halves[0]!);
  const tail = halves.length === 2 ? groups(halves[1]!) : [];
  if (head === undefined || tail === undefined) return undefined;
  // An embedded IPv4 is only allowed at the very end.
  if (halves.length === 2 && halves[0]!.includes('.')) return undefined;
  const total = head.length + tail.length;
  if (halves.length === 1 ? total !== 8 : total > 7) return undefined;
  const all = [...head, ...new Array<number>(8 - total).fill(0), ...tail];
  const out = new Uint8Array(16);
  for (let i = 0; i < 8; i++) {
    out[2 * i] = all[i]! >> 8;
    out[2 * i + 1] = all[i]! & 0xff;
  }
  return out;
}

function isMappedV4(b: Uint8Array): boolean {
  for (let i = 0; i < 10; i++) if (b[i] !== 0) return false;
  return b[10] === 0xff && b[11] === 0xff;
}

interface Cidr {
  bytes: Uint8Array;
  bits: number;
}

/** Parses `a.b.c.d/n`, `x::y/n` or a single address; IPv4 prefixes live in the mapped range (n + 96). */
export function parseCidr(text: string): Cidr | undefined {
  const slash = text.indexOf('/');
  const addr = slash < 0 ? text : text.slice(0, slash);
  const bytes = parseIp(addr);
  if (bytes === undefined) return undefined;
  const v4 = !addr.includes(':');
  const max = v4 ? 32 : 128;
  let bits = max;
  if (slash >= 0) {
    const p = text.slice(slash + 1);
    if (!/^\d{1,3}$/.test(p)) return undefined;
    bits = Number(p);
    if (bits > max) return undefined;
  }
  return { bytes, bits: v4 ? bits + 96 : bits };
}

function inCidr(addr: Uint8Array, c: Cidr): boolean {
  const full = c.bits >> 3;
  for (let i = 0; i < full; i++) if (addr[i] !== c.bytes[i]) return false;
  const rest = c.bits & 7;
  if (rest === 0) return true;
  const mask = (0xff << (8 - rest)) & 0xff;
  return (addr[full]! & mask) === (c.bytes[full]! & mask);
}

/** Turns a `trustProxy` setting into a predicate `(address, hop) => trusted`, or undefined for "trust none". */
export function compileTrust(option: string, value: TrustProxy | undefined): TrustFn | undefined {
  if (value === undefined || value === false) return undefined;
  if (value === true) return () => true;
  if (typeof value === 'number') {
    const n = integer(option, value, 0, 1000);
    return n === 0 ? undefined : (_a, hop) => hop < n;
  }
  if (typeof value === 'function') return value;
  const list = typeof value === 'string' ? value.split(',') : value;
  if (!Array.isArray(list)) {
    throw new ConfigError(option, value, 'a boolean, a hop count, a list of addresses/CIDRs, or a function');
  }
  const ranges: Cidr[] = [];
  for (const raw of list) {
    if (typeof raw !== 'string') throw new ConfigError(option, value, 'a list of address or CIDR strings');
    const entry = raw.trim();
    const preset = PRESETS[entry];
    for (const item of preset ?? [entry]) {
      const c = parseCidr(item);
      if (c === undefined) {
        throw new ConfigError(
          option,
          raw,
          "an IPv4/IPv6 address, a CIDR such as '10.0.0.0/8', or 'loopback', 'linklocal', 'uniquelocal'",
        );
      }
      ranges.push(c);
    }
  }
  if (ranges.length === 0) return undefined;
  return (address) => {
    const b = parseIp(address);
    if (b === undefined) return false;
    for (const c of ranges) if (inCidr(b, c)) return true;
    return false;
  };
}

/**
 * Strips a port and brackets from one forwarded address: `1.2.3.4:80` → `1.2.3.4`,
 * `[2001:db8::1]:443` → `2001:db8::1`; a bare IPv6 address is left whole.
 */
export function stripPort(value: string): string {
  const s = value.trim();
  if (s.startsWith('[')) {
    const end = s.indexOf(']');
    return end < 0 ? s : s.slice(1, end);
  }
  const colon = s.indexOf(':');
  if (colon >= 0 && colon === s.lastIndexOf(':')) return s.slice(0, colon);
  return s;
}

/** The addresses of an `X-Forwarded-For` value, left (client side) to right (nearest proxy). */
export function parseXForwardedFor(value: string): string[] {
  const out: string[] = [];
  for (const part of value.split(',')) {
    const a = stripPort(part);
    if (a !== '') out.push(a);
  }
  return out;
}

/**
 * The `for=` node of every element of a `Forwarded` value (RFC 7239), left to right. Values may be
 * tokens or quoted strings (`for="[2001:db8:cafe::17]:4711"`); ports and brackets are stripped. An
 * element without `for` yields `unknown`, as RFC 7239 spells an unknown node.
 *
 * Returns `undefined` when the value is malformed: an unclosed quoted string, a quote inside a
 * token, a pair without `=`, or text after a closing quote. Node joins repeated header lines with
 * ", ", so a client line `for="9.9.9.1` would otherwise swallow the entry the trusted proxy appended
 * after it: a malformed value can not be split into hops at all, and is never believed.
 */
export function parseForwarded(value: string): string[] | undefined {
  const out: string[] = [];
  const n = value.length;
  let i = 0;
  let forValue: string | undefined;
  let pairs = 0;
  const isSpace = (c: string | undefined): boolean => c === ' ' || c === '\t';
  for (;;) {
    // One forwarded-pair (or an empty one) per round: token "=" (token / quoted-string).
    while (isSpace(value[i])) i++;
    const c0 = value[i];
    if (c0 !== undefined && c0 !== ';' && c0 !== ',') {
      const nameStart = i;
      while (i < n && value[i] !== '=' && value[i] !== ';' && value[i] !== ',' && value[i] !== '"') i++;
      if (value[i] !== '=') return undefined;
      const name = value.slice(nameStart, i).trim().toLowerCase();
      if (name === '' || /\s/.test(name)) return undefined;
      i++;
      let v = '';
      if (value[i] === '"') {
        i++;
        let closed = false;
        while (i < n) {
          const c = value[i]!;
          if (c === '"') {
            closed = true;
            i++;
            break;
          }
          if (c === '\\') {
            if (i + 1 >= n) return undefined;
            i++;
          }
          v += value[i];
          i++;
        }
        if (!closed) return undefined;
        while (isSpace(value[i])) i++;
        if (i < n && value[i] !== ';' && value[i] !== ',') return undefined;
      } else {
        const start = i;
        while (i < n && value[i] !== ';' && value[i] !== ',') {
          if (value[i] === '"') return undefined;
          i++;
        }
        v = value.slice(start, i).trim();
        if (v === '' || /\s/.test(v)) return undefined;
      }
      pairs++;
      if (name === 'for' && forValue === undefined) forValue = v.trim();
    }
    const sep = value[i];
    if (sep === ';') {
      i++;
      continue;
    }
    // End of an element (a comma or the end of the value). Empty elements (", ,") are skipped.
    if (pairs > 0) out.push(forValue === undefined || forValue === '' ? 'unknown' : stripPort(forValue));
    forValue = undefined;
    pairs = 0;
    if (sep === undefined) return out;
    i++;
  }
}

/** What a forwarding header says beyond the chain: reported through `clientAddress`'s `onUntrusted`. */
export type UntrustedForwarding =
  /** The header could not be parsed (an unclosed quote, for example): none of it was believed. */
  | 'malformed'
  /** An entry that is not an IP address (`unknown`, `_hidden`, garbage) ended the walk. */
  | 'not-an-address';

/**
 * The client's address by the rightmost-untrusted rule. `header` is the forwarding header's value
 * (or undefined); it is read only when the socket's peer itself is trusted.
 *
 * Only IP addresses become keys. A malformed header is not believed at all: the answer is the socket
 * peer (the last hop known to be trusted). An entry that is not an IP address stops the walk: the
 * answer is the trusted hop that wrote it. Both are reported through `onUntrusted`.
 */
export function clientAddress(
  socketAddress: string,
  header: string | undefined,
  kind: ForwardedHeader,
  trust: TrustFn | undefined,
  onUntrusted?: (why: UntrustedForwarding) => void,
): string {
  if (trust === undefined || header === undefined || !trust(socketAddress, 0)) return socketAddress;
  const chain = kind === 'forwarded' ? parseForwarded(header) : parseXForwardedFor(header);
  if (chain === undefined) {
    onUntrusted?.('malformed');
    return socketAddress;
  }
  let address = socketAddress;
  for (let i = chain.length - 1, hop = 1; i >= 0; i--, hop++) {
    const entry = chain[i]!;
    if (parseIp(entry) === undefined) {
      onUntrusted?.('not-an-address');
      return address;
    }
    address = entry;
    if (!trust(address, hop)) return address;
  }
  return address;
}

/**
 * The rate-limiting key for an address: IPv4-mapped IPv6 becomes plain IPv4 (one client, one key),
 * and an IPv6 address is cut to its `/ipv6Subnet` prefix, because one IPv6 client usually owns a
 * whole /64 or /56 and could otherwise rotate keys at will.
 */
export function addressKey(address: string, ipv6Subnet: number): string {
  if (!address.includes(':')) return address;
  // The usual form on a dual-stack server (`::ffff:203.0.113.7`): the IPv4 text as it stands, when
  // it is canonical (what parsing would print), without parsing the IPv6 around it.
  if (address.startsWith('::ffff:')) {
    const v4 = address.slice(7);
    if (parseIpv4(v4) !== undefined) return v4;
  }
  const b = parseIp(address);
  if (b === undefined) return address;
  if (isMappedV4(b)) return `${b[12]}.${b[13]}.${b[14]}.${b[15]}`;
  if (ipv6Subnet >= 128) return address.toLowerCase();
  const full = ipv6Subnet >> 3;
  const rest = ipv6Subnet & 7;
  if (rest !== 0) b[full] = b[full]! & ((0xff << (8 - rest)) & 0xff);
  for (let i = full + (rest !== 0 ? 1 : 0); i < 16; i++) b[i] = 0;
  const groups: string[] = [];
  for (let i = 0; i < 8; i++) groups.push(((b[2 * i]! << 8) | b[2 * i + 1]!).toString(16));
  return `${compressIpv6(groups)}/${ipv6Subnet}`;
}

/** RFC 5952 text: the longest run of two or more zero groups becomes `::`. */
function compressIpv6(groups: string[]): string {
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== '0') {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === '0') j++;
    if (j - i > bestLen && j - i >= 2) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  if (bestStart < 0) return groups.join(':');
  return `${groups.slice(0, bestStart).join(':')}::${groups.slice(bestStart + bestLen).join(':')}`;
}

/**
 * `addressKey` for one `ipv6Subnet`, for the hot path: an IPv6 address's key (parsed, masked and
 * printed: microseconds) is remembered, up to `size` addresses, all forgotten at once when full
 * (memory stays bounded whatever the clients send). IPv4 needs no memory.
 */
export function addressKeyer(ipv6Subnet: number, size = 1024): (address: string) => string {
  const cache = new Map<string, string>();
  return (address) => {
    if (!address.includes(':')) return address;
    let key = cache.get(address);
    if (key === undefined) {
      key = addressKey(address, ipv6Subnet);
      if (cache.size >= size) cache.clear();
      cache.set(address, key);
    }
    return key;
  };
}
