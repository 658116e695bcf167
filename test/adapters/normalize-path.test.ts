import { describe, expect, it } from 'vitest';
import { normalizePath } from '../../src/adapters/routes.js';

describe('normalizePath', () => {
  it.each([
    ['/api', '/api'],
    ['/health/../api', '/api'],
    ['/health/%2e%2e/api', '/api'],
    ['/health/%2E%2E/api', '/api'],
    ['/health/./../api', '/api'],
    ['/%6cogin', '/login'],
    ['/%6Cogin', '/login'],
    ['//login', '/login'],
    ['///a//b', '/a/b'],
    ['http://host/login', '/login'],
    ['https://host:8443/a/../b', '/b'],
    ['http://host', '/'],
    ['/a/.', '/a/'],
    ['/a/..', '/'],
    ['/..', '/'],
    ['/../../x', '/x'],
    ['/a%2Fb', '/a%2Fb'],
    ['/a%20b', '/a%20b'],
    ['/a.b/.c', '/a.b/.c'],
    ['*', '*'],
  ])('%s → %s', (input, expected) => {
    expect(normalizePath(input)).toBe(expected);
  });
});
