/**
 * A small RFC 8941 List parser for the tests (strings, tokens, integers, parameters): enough to read
 * RateLimit and RateLimit-Policy back exactly as a client would. Throws on anything malformed.
 */
export type BareItem = string | number | boolean;
export interface Member {
  value: BareItem;
  params: Record<string, BareItem>;
}

export function parseList(input: string): Member[] {
  let i = 0;
  const s = input;
  const ws = () => {
    while (s[i] === ' ' || s[i] === '\t') i++;
  };
  const bare = (): BareItem => {
    const c = s[i];
    if (c === '"') {
      let out = '';
      i++;
      for (;;) {
        if (i >= s.length) throw new Error(`unterminated string in ${input}`);
        const ch = s[i++]!;
        if (ch === '\\') {
          const n = s[i++];
          if (n !== '"' && n !== '\\') throw new Error(`bad escape in ${input}`);
          out += n;
        } else if (ch === '"') return out;
        else if (ch < ' ' || ch > '~') throw new Error(`bad char in ${input}`);
        else out += ch;
      }
    }
    if (c === '-' || (c !== undefined && c >= '0' && c <= '9')) {
      const m = /^-?\d{1,15}/.exec(s.slice(i));
      if (!m) throw new Error(`bad integer in ${input}`);
      i += m[0].length;
      if (s[i] === '.') throw new Error(`decimals not expected in ${input}`);
      return Number(m[0]);
    }
    if (c === '?') {
      i++;
      const b = s[i++];
      if (b !== '0' && b !== '1') throw new Error(`bad boolean in ${input}`);
      return b === '1';
    }
    const m = /^[A-Za-z*][A-Za-z0-9:/!#$%&'*+\-.^_`|~]*/.exec(s.slice(i));
    if (!m) throw new Error(`bad item at ${i} in ${input}`);
    i += m[0].length;
    return m[0];
  };
  const key = (): string => {
    const m = /^[a-z*][a-z0-9_\-.*]*/.exec(s.slice(i));
    if (!m) throw new Error(`bad key at ${i} in ${input}`);
    i += m[0].length;
    return m[0];
  };
  const out: Member[] = [];
  ws();
  while (i < s.length) {
    const value = bare();
    const params: Record<string, BareItem> = {};
    while (s[i] === ';') {
      i++;
      ws();
      const k = key();
      let v: BareItem = true;
      if (s[i] === '=') {
        i++;
        v = bare();
      }
      params[k] = v;
    }
    out.push({ value, params });
    ws();
    if (i >= s.length) break;
    if (s[i] !== ',') throw new Error(`expected , at ${i} in ${input}`);
    i++;
    ws();
    if (i >= s.length) throw new Error(`trailing comma in ${input}`);
  }
  return out;
}
