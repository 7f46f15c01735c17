/**
 * What the shared suites import from 'vitest', for a page: the suite, test and hook functions are
 * @vitest/runner's own (the runner vitest uses; page-runner.ts drives it), `expect` is chai with
 * @vitest/expect's Jest matchers (as vitest builds its own), `vi` is @vitest/spy's spies.
 * shared-suites-webgpu.test.ts bundles the suites with `vitest` resolved to this file.
 */
import * as chai from 'chai';
import { ASYMMETRIC_MATCHERS_OBJECT, getState, JestAsymmetricMatchers, JestChaiExpect, JestExtend, setState } from '@vitest/expect';
import { fn, spyOn } from '@vitest/spy';

export { afterAll, afterEach, beforeAll, beforeEach, describe, it, suite, test, type TestFunction } from '@vitest/runner';

chai.use(JestExtend);
chai.use(JestChaiExpect);
chai.use(JestAsymmetricMatchers);

type Expect = ((value: unknown, message?: string) => any) & Record<string, any>;

/** vitest's `expect` as vitest/dist builds it (createExpect), without the parts a page does not have (snapshots, poll). */
export const expect: Expect = ((value: unknown, message?: string) => {
  const { assertionCalls } = getState(expect as never) as { assertionCalls: number };
  setState({ assertionCalls: assertionCalls + 1 }, expect as never);
  return chai.expect(value, message);
}) as Expect;
Object.assign(expect, chai.expect);
Object.assign(expect, (globalThis as Record<symbol, unknown>)[ASYMMETRIC_MATCHERS_OBJECT] as object);
expect.getState = () => getState(expect as never);
expect.setState = (state: object) => setState(state as never, expect as never);
expect.extend = (matchers: object) => chai.expect.extend(expect, matchers);
setState({ assertionCalls: 0, isExpectingAssertions: false, isExpectingAssertionsError: null, expectedAssertionsNumber: null, expectedAssertionsNumberErrorGen: null } as never, expect as never);

export const vi = { fn, spyOn };
