import { describe, expect, it } from 'vitest';
import { referencedIds, withoutRefused } from '../../scripts/deploy-rehearsal.ts';

describe('the deploy rehearsal template', () => {
  it('finds the logical ids a value refers to through Ref, GetAtt and Sub, not pseudo parameters or literals', () => {
    const value = {
      a: { Ref: 'Bucket' }, b: { 'Fn::GetAtt': ['Role', 'Arn'] }, c: { 'Fn::GetAtt': 'Fn.Arn' },
      d: { 'Fn::Sub': '${Mapping} in ${AWS::Region}, ${Fn2.Arn}, ${!Literal}' },
      e: { 'Fn::Sub': ['${X}', { X: { Ref: 'Inner' } }] },
    };
    expect([...referencedIds(value)].sort()).toEqual(['Bucket', 'Fn', 'Fn2', 'Inner', 'Mapping', 'Role', 'X']);
  });

  it('leaves out a refused type and, transitively, whatever refers to it, and keeps the rest as it was', () => {
    const template = {
      Resources: {
        Mapping: { Type: 'AWS::Lambda::EventSourceMapping', Properties: { FunctionName: { Ref: 'Fn' } } },
        Alarm: { Type: 'AWS::CloudWatch::Alarm', Properties: { Dimensions: [{ Value: { Ref: 'Mapping' } }] } },
        Board: { Type: 'AWS::CloudWatch::Dashboard', Properties: { DashboardBody: { 'Fn::Sub': '{"m": "${Alarm}"}' } } },
        Waiter: { Type: 'AWS::SNS::Topic', DependsOn: 'Board', Properties: {} },
        Fn: { Type: 'AWS::Lambda::Function', Properties: { Role: { 'Fn::GetAtt': ['Role', 'Arn'] } } },
        Role: { Type: 'AWS::IAM::Role', Properties: {} },
      },
      Outputs: { FnArn: { Value: { 'Fn::GetAtt': ['Fn', 'Arn'] } }, MappingId: { Value: { Ref: 'Mapping' } } },
    };
    const { template: kept, omitted } = withoutRefused(template, { 'AWS::Lambda::EventSourceMapping': 'refused' });
    expect(Object.keys(kept.Resources)).toEqual(['Fn', 'Role']);
    expect(kept.Resources.Fn).toBe(template.Resources.Fn);
    expect(Object.keys(kept.Outputs ?? {})).toEqual(['FnArn']);
    expect(omitted.map((o) => [o.logicalId, o.why])).toEqual([
      ['Mapping', 'refused'], ['Alarm', 'refers to Mapping, left out'], ['Board', 'refers to Alarm, left out'],
      ['Waiter', 'refers to Board, left out'], ['MappingId', 'refers to Mapping, left out'],
    ]);
  });
});
