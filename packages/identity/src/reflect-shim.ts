// The minimal Reflect metadata API that tsyringe (a dependency of @peculiar/x509 2.x) checks for
// when it is first imported ("tsyringe requires a reflect polyfill"). @peculiar/x509 only uses it
// for its internal dependency-injection registry, so a small WeakMap store is enough; we do not
// pull in the full reflect-metadata package or touch an existing polyfill. Universal code.
// See docs/adr/0001-x509-library.md.

type MetadataMap = Map<unknown, unknown>;
interface ReflectMetadata {
  defineMetadata?: (key: unknown, value: unknown, target: object, property?: PropertyKey) => void;
  getOwnMetadata?: (key: unknown, target: object, property?: PropertyKey) => unknown;
  getMetadata?: (key: unknown, target: object, property?: PropertyKey) => unknown;
}

function install(): boolean {
  const R = Reflect as unknown as ReflectMetadata;
  if (typeof R.getMetadata === "function") return true;
  const store = new WeakMap<object, Map<PropertyKey | undefined, MetadataMap>>();
  const lookup = (
    target: object,
    property: PropertyKey | undefined,
    create: boolean,
  ): MetadataMap | undefined => {
    let byProperty = store.get(target);
    if (byProperty === undefined) {
      if (!create) return undefined;
      byProperty = new Map();
      store.set(target, byProperty);
    }
    let map = byProperty.get(property);
    if (map === undefined && create) {
      map = new Map();
      byProperty.set(property, map);
    }
    return map;
  };
  R.defineMetadata = (key, value, target, property) => {
    lookup(target, property, true)?.set(key, value);
  };
  R.getOwnMetadata = (key, target, property) => lookup(target, property, false)?.get(key);
  R.getMetadata = (key, target, property) => {
    for (let t: object | null = target; t !== null; t = Object.getPrototypeOf(t)) {
      const map = lookup(t, property, false);
      if (map?.has(key)) return map.get(key);
    }
    return undefined;
  };
  return true;
}

/** True once the Reflect metadata API exists (importing this module installs it). */
export const reflectMetadataReady: boolean = install();
