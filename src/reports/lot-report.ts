import PDFDocument from 'pdfkit';
import { stringify } from 'csv-stringify/sync';
import type { LotStatistics } from '../quality/lot-statistics.js';
import type { InspectionDocument } from '../inspection/inspection-document.js';

/**
 * The lot's traceability report: for every part, what it was judged by (images, models, plan
 * version), the verdict, and who disposed of it and when. One row per inspection.
 */
const columns: [string, (d: InspectionDocument) => string | number | boolean | null][] = [
  ['inspection_id', (d) => d.id],
  ['received_at', (d) => d.receivedAt],
  ['captured_at', (d) => d.capturedAt],
  ['serial', (d) => d.serial],
  ['part_number', (d) => d.partNumber],
  ['lot_id', (d) => d.lotId],
  ['work_order', (d) => d.workOrder],
  ['operation', (d) => d.operation],
  ['site', (d) => d.site],
  ['line', (d) => d.line],
  ['station_id', (d) => d.stationId],
  ['operator', (d) => d.operator],
  ['image_sha256', (d) => d.images.map((i) => i.sha256).join(' ')],
  ['models', (d) => d.models.map((m) => `${m.id}@${m.version}`).join(' ')],
  ['model_sha256', (d) => d.models.map((m) => m.sha256).join(' ')],
  ['plan_version', (d) => d.plan.version],
  ['model_verdict', (d) => d.modelVerdict],
  ['verdict', (d) => d.verdict],
  ['final', (d) => d.final],
  ['reason', (d) => d.reason],
  ['disposition', (d) => d.disposition?.decision ?? null],
  ['disposition_reason', (d) => d.disposition?.reason ?? null],
  ['signed_by', (d) => d.disposition?.by ?? null],
  ['signer_name', (d) => d.disposition?.name ?? null],
  ['signature_meaning', (d) => d.disposition?.meaning ?? null],
  ['signed_at', (d) => d.disposition?.at ?? null],
];

export function lotReportCsv(parts: readonly InspectionDocument[]): string {
  const rows = [columns.map(([name]) => name), ...parts.map((d) => columns.map(([, get]) => {
    const v = get(d);
    return v === null ? '' : String(v);
  }))];
  // Serials and reasons come from cameras and people: a leading "=" must not become a spreadsheet formula.
  return stringify(rows, { escape_formulas: true });
}

const pdfColumns: [string, number, (d: InspectionDocument) => string][] = [
  ['Serial', 90, (d) => d.serial],
  ['Received', 95, (d) => d.receivedAt.replace('T', ' ').slice(0, 19)],
  ['Station', 60, (d) => d.stationId],
  ['Image sha256', 80, (d) => d.images.map((i) => i.sha256.slice(0, 12)).join(' ')],
  ['Models', 95, (d) => d.models.map((m) => `${m.id}@${m.version}`).join(' ')],
  ['Plan', 28, (d) => `v${d.plan.version}`],
  ['Model', 42, (d) => d.modelVerdict ?? 'pending'],
  ['Verdict', 42, (d) => `${d.verdict ?? 'pending'}${d.final ? '' : '*'}`],
  ['Disposition', 50, (d) => d.disposition?.decision ?? ''],
  ['Signed by', 80, (d) => d.disposition ? d.disposition.name : ''],
  ['Signed at', 95, (d) => d.disposition?.at.replace('T', ' ').slice(0, 19) ?? ''],
];

/** The same report as a printable PDF (A4 landscape), streamed to `out`. */
export function writeLotReportPdf(out: NodeJS.WritableStream, lotId: string, stats: LotStatistics, parts: readonly InspectionDocument[], generatedBy: string): void {
  const doc = new PDFDocument({ size: 'A4', layout: 'landscape', margin: 36, info: { Title: `Lot ${lotId} traceability report`, Creator: 'visq' } });
  doc.pipe(out);
  doc.fontSize(14).text(`Lot ${lotId}: traceability report`);
  doc.fontSize(9).text(`Generated ${new Date().toISOString()} by ${generatedBy}. Part numbers: ${[...new Set(parts.map((p) => p.partNumber))].join(', ')}.`);
  const c = stats.counts;
  doc.text(`Inspected ${parts.length}: PASS ${c.PASS}, FAIL ${c.FAIL}, awaiting review ${c.REVIEW}, pending ${c.pending}. `
    + `Yield ${stats.yield === null ? '—' : `${(stats.yield * 100).toFixed(1)} %`} of ${stats.decided} decided. * = not final (no disposition needed or given).`);
  doc.moveDown(0.8);

  const left = doc.page.margins.left;
  const bottom = doc.page.height - doc.page.margins.bottom;
  const rowHeight = 12;
  const header = () => {
    doc.font('Helvetica-Bold').fontSize(7);
    let x = left;
    const y = doc.y;
    for (const [name, width] of pdfColumns) { doc.text(name, x, y, { width: width - 4, lineBreak: false }); x += width; }
    doc.font('Helvetica').moveTo(left, y + rowHeight - 2).lineTo(x, y + rowHeight - 2).lineWidth(0.5).stroke();
    doc.y = y + rowHeight;
  };
  header();
  for (const part of parts) {
    if (doc.y + rowHeight > bottom) { doc.addPage(); header(); }
    let x = left;
    const y = doc.y;
    for (const [, width, get] of pdfColumns) { doc.text(get(part), x, y, { width: width - 4, height: rowHeight, ellipsis: true, lineBreak: false }); x += width; }
    doc.y = y + rowHeight;
  }
  doc.end();
}
