/**
 * The offline Service Tags sample (shared/geo/data/ServiceTags_Public.sample.json, see the README there): real
 * AzureCloud.<region> prefixes covering the Azure addresses of the demo and the scenario suite, for demos and
 * tests that must not download anything. Never a production source: it lists a few blocks per region.
 */
import { AzureRanges, readServiceTagsDocument } from './azureRanges.js';
import sample from './data/ServiceTags_Public.sample.json' with { type: 'json' };

/** The sample document, as parsed JSON (ServiceTags_Public shape). */
export const SAMPLE_SERVICE_TAGS: unknown = sample;

/** The Azure ranges of the sample. */
export function sampleAzureRanges(): AzureRanges {
  return AzureRanges.fromDocument(readServiceTagsDocument(sample, 'the Service Tags sample'));
}
