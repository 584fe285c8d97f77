import { createRequire } from 'node:module';

/**
 * Kusto.Language (the parser and semantic analyser behind the Kusto editors), from @kusto/language-service-next:
 * a Bridge.NET translation of the C# library that runs offline. Its scripts define globals (`Bridge`, `System`,
 * `Kusto`), so they are loaded once with require. Only the few members used here are typed.
 */

interface List<T> {
  Count: number;
  getItem(index: number): T;
}

export interface KustoDiagnostic {
  Code: string;
  Severity: string;
  Category: string;
  Message: string;
  Start: number;
  Length: number;
}

interface KustoColumn {
  Name: string;
  Type: { Name: string };
}

interface KustoCode {
  HasSemantics: boolean;
  GetDiagnostics(): List<KustoDiagnostic>;
  GetSyntaxDiagnostics(): List<KustoDiagnostic>;
  ResultType: { Columns?: List<KustoColumn> } | null;
}

interface KustoLanguage {
  KustoCode: { ParseAndAnalyze(text: string, globals: unknown): KustoCode };
  GlobalState: { Default: { WithDatabase(db: unknown): unknown } };
  Symbols: {
    TableSymbol: { $ctor7: new (name: string, schema: string, description: string | null) => unknown };
    DatabaseSymbol: {
      $ctor2: new (name: string, alternateName: string | null, members: unknown[]) => unknown;
    };
  };
}

let language: KustoLanguage | undefined;

function kusto(): KustoLanguage {
  if (!language) {
    const require = createRequire(import.meta.url);
    require('@kusto/language-service-next/bridge.min.js');
    require('@kusto/language-service-next/Kusto.Language.Bridge.min.js');
    language = (globalThis as unknown as { Kusto: { Language: KustoLanguage } }).Kusto.Language;
  }
  return language;
}

const list = <T>(l: List<T> | null | undefined): T[] =>
  l ? Array.from({ length: l.Count }, (_, i) => l.getItem(i)) : [];

export interface Analysis {
  hasSemantics: boolean;
  syntax: KustoDiagnostic[];
  /** Syntax and semantic diagnostics. */
  all: KustoDiagnostic[];
  /** Result columns as name → Kusto type name. */
  columns: [string, string][];
}

/**
 * Parses and analyses `text` against one database holding one table declared by a schema string
 * (`(Col:type, ...)`, as `.create table` takes it).
 */
export function analyse(text: string, table: { name: string; schema: string }): Analysis {
  const K = kusto();
  const symbol = new K.Symbols.TableSymbol.$ctor7(table.name, table.schema, null);
  const db = new K.Symbols.DatabaseSymbol.$ctor2('workspace', null, [symbol]);
  const code = K.KustoCode.ParseAndAnalyze(text, K.GlobalState.Default.WithDatabase(db));
  return {
    hasSemantics: code.HasSemantics,
    syntax: list(code.GetSyntaxDiagnostics()),
    all: list(code.GetDiagnostics()),
    columns: list(code.ResultType?.Columns).map((c) => [c.Name, c.Type.Name]),
  };
}

export const describeDiagnostics = (text: string, ds: KustoDiagnostic[]): string[] =>
  ds.map(
    (d) =>
      `${d.Code} ${d.Severity}: ${d.Message} at ${JSON.stringify(text.slice(d.Start, d.Start + d.Length))}`,
  );
