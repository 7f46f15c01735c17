/** The name Kiln is published under on npm (`kiln` belongs to an unrelated package). */
export const PACKAGE_NAME = 'kiln-ml';
