import type { OpImpl } from "../node.js";
export const recurrentOps: Record<string, OpImpl> = {};
