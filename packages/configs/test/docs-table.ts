import type { DerivedField } from '../src/index.js';

/** DERIVED_FIELDS as the markdown table docs/configs.md holds. */
export function derivedFieldsTable(rows: readonly DerivedField[]): string {
  const cell = (s: string) => s.replace(/\|/g, '\\|');
  return [
    '| config | field | when the file does not store it | a stored value | why |',
    '|---|---|---|---|---|',
    ...rows.map((r) => `| ${r.config} | \`${r.field}\` | ${cell(r.derived)} | ${r.rule} | ${cell(r.note)} |`),
  ].join('\n');
}
