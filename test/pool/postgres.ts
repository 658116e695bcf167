// The PostgreSQL the integration tests use: 127.0.0.1:5432, database `test`, user `postgres`
// (the standard PG* variables override). Under CI (SPILLWAY_REQUIRE_SERVICES=1) a missing
// PostgreSQL fails the file; elsewhere its tests skip with one line.
import pg from 'pg';

export const pgConfig = {
  host: process.env['PGHOST'] ?? '127.0.0.1',
  port: Number(process.env['PGPORT'] ?? 5432),
  database: process.env['PGDATABASE'] ?? 'test',
  user: process.env['PGUSER'] ?? 'postgres',
};

/** Why PostgreSQL cannot be used here, or undefined when it answers `select 1`. */
export async function postgresMissing(): Promise<string | undefined> {
  const c = new pg.Client({ ...pgConfig, connectionTimeoutMillis: 2000 });
  try {
    await c.connect();
    await c.query('select 1');
    return undefined;
  } catch (err) {
    const reason = `no PostgreSQL at ${pgConfig.host}:${pgConfig.port}/${pgConfig.database}: ${(err as Error).message}`;
    if (process.env['SPILLWAY_REQUIRE_SERVICES'] === '1')
      throw new Error(`SPILLWAY_REQUIRE_SERVICES=1 but ${reason}`);
    console.warn(`skipping PostgreSQL tests: ${reason}`);
    return reason;
  } finally {
    await c.end().catch(() => {});
  }
}
