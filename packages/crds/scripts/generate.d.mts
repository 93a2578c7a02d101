/** Absolute path of packages/crds. */
export declare const packageRoot: string;
/** Generates every output file in memory: path relative to the package → content. */
export declare function generate(root?: string): Map<string, string>;
