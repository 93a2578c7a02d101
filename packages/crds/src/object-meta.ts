import * as z from "zod";

/** The parts of Kubernetes `metadata` that manifests carry. Other fields are kept as they are. */
export interface ObjectMeta {
  name?: string | undefined;
  generateName?: string | undefined;
  namespace?: string | undefined;
  labels?: { [key: string]: string } | undefined;
  annotations?: { [key: string]: string } | undefined;
  [key: string]: unknown;
}

/** zod schema for {@link ObjectMeta}. */
export const ObjectMetaSchema: z.ZodType<ObjectMeta> = z.looseObject({
  name: z.string().optional(),
  generateName: z.string().optional(),
  namespace: z.string().optional(),
  labels: z.record(z.string(), z.string()).optional(),
  annotations: z.record(z.string(), z.string()).optional(),
});
