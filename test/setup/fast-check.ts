import fc from 'fast-check';

// A failing property shrinks its counterexample, and shrinking doubles can take minutes of
// synchronous work that no test timeout interrupts: bound every property run, and report the
// interruption as a failure (with the counterexample found so far) instead of hanging CI.
fc.configureGlobal({ interruptAfterTimeLimit: 60_000, markInterruptAsFailure: true });
