import type { OpImpl } from "../node.js";
export const resizeOps: Record<string, OpImpl> = {};
