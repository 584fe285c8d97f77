/** Must equal package.json's version (a test checks): the compiled CLI cannot import package.json from dist/. */
export const VERSION = '0.1.0';
